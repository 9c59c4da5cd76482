"""A user's photo framed as the training images are (see `framing`).

The background is found from the picture's border (a linear gradient is taken away),
the ink where the picture differs from it by half the strongest difference (specks of
noise left out), stretched to full contrast; its box is scaled to the training images'
box keeping its proportions and placed by centre of mass (or box) as theirs are.
"""

import numpy as np

from jaxsoftmax.data.framing import border

# The ink is where the picture differs from its background by at least this fraction of
# the strongest difference, and at least this many times the background's noise.
INK_LEVEL = 0.5
NOISE_LEVELS = 4.0
# Below this fraction of the strongest difference (or the noise) is background, black;
# the ink's box takes in what rises above it within MARGIN of the box's side; this
# percentile of the ink's strength becomes full white.
FLOOR_LEVEL = 0.05
MARGIN = 0.1
FULL_PERCENTILE = 90


def frame(
    gray: np.ndarray, image_shape: tuple[int, int], framing: dict, *, dark_ink: bool | None
) -> tuple[np.ndarray, dict]:
    """A picture framed as the training images are: light ink on black.

    Args:
      gray: float (height, width) in [0, 1], the picture in grayscale (shrunk to at
        most `images.WORK_SIDE` pixels a side: finding the ink stays fast).
      image_shape: (height, width) the model takes.
      framing: as `framing.framing_of` gives.
      dark_ink: whether the ink is darker than the background; None decides from which
        side of the background the strongest differences lie.

    Returns:
      float32 (height, width) in [0, 1], ink 1 on background 0, and what was done:
      {"ink": "dark" | "light", "ink_box": [left, top, right, bottom] in `gray`'s
      pixels, "scaled_to": [height, width]} ("found": "no ink" where none was).
    """
    difference = gray - _background(gray)
    if dark_ink is None:
        dark_ink = -np.percentile(difference, 0.5) > np.percentile(difference, 99.5)
    ink = -difference if dark_ink else difference
    cleaned = _median3(ink)  # where the ink is: specks of noise do not count
    noise = 1.4826 * np.median(np.abs(border(ink) - np.median(border(ink))))
    strongest = cleaned.max()
    report = {"ink": "dark" if dark_ink else "light"}
    level = max(INK_LEVEL * strongest, NOISE_LEVELS * noise)
    if strongest <= level or strongest < 1 / 64:
        return np.zeros(image_shape, np.float32), report | {"found": "no ink"}
    top, bottom, left, right = _box(cleaned > level)
    # The box grown to the ink's faint edges near it (MNIST's box holds every pixel that
    # is not black), not to specks of noise further away.
    floor = max(FLOOR_LEVEL * strongest, NOISE_LEVELS * noise)
    margin = max(1, round(MARGIN * max(bottom - top, right - left)))
    top, left = max(0, top - margin), max(0, left - margin)
    inner = _box(cleaned[top : bottom + margin, left : right + margin] > floor)
    top, bottom, left, right = top + inner[0], top + inner[1], left + inner[2], left + inner[3]
    core = cleaned[top:bottom, left:right]
    full = np.percentile(core[core > level], FULL_PERCENTILE)
    crop = np.clip((ink[top:bottom, left:right] - floor) / max(full - floor, 1e-12), 0, 1)
    limit = (min(framing["box"], image_shape[0]), min(framing["box"], image_shape[1]))
    fit = min(limit[0] / crop.shape[0], limit[1] / crop.shape[1])
    size = (max(1, round(crop.shape[0] * fit)), max(1, round(crop.shape[1] * fit)))
    placed = _placed(np.clip(_resized(crop, size), 0, 1), image_shape, framing["centre"])
    box = [int(v) for v in (left, top, right, bottom)]
    return placed, report | {"ink_box": box, "scaled_to": list(size)}


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The rows and columns of a mask's True pixels: top, bottom, left, right (ends
    excluded)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _placed(digit: np.ndarray, image_shape, centre: str) -> np.ndarray:
    """`digit` on a black image of `image_shape`, its centre of mass (or box) at the centre."""
    height, width = image_shape
    if centre == "mass" and digit.sum() > 0:
        mass = digit.sum()
        at_y = (digit.sum(axis=1) * np.arange(digit.shape[0])).sum() / mass
        at_x = (digit.sum(axis=0) * np.arange(digit.shape[1])).sum() / mass
    else:
        at_y, at_x = (digit.shape[0] - 1) / 2, (digit.shape[1] - 1) / 2
    top = int(np.clip(round(height / 2 - at_y), 0, height - digit.shape[0]))
    left = int(np.clip(round(width / 2 - at_x), 0, width - digit.shape[1]))
    image = np.zeros(image_shape, np.float32)
    image[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return image


def _background(gray: np.ndarray) -> np.ndarray:
    """The background: a plane a + b*y + c*x fitted to the border's pixels, fitted again
    without those far from the first fit (ink touching the border)."""
    height, width = gray.shape
    ys, xs = np.mgrid[:height, :width]
    ys, xs, values = border(ys), border(xs), border(gray)
    design = np.stack([np.ones_like(values), ys / height, xs / width], axis=1)
    keep = np.ones(len(values), bool)
    for _ in range(2):
        coefficients = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = np.abs(values - design @ coefficients)
        keep = residual <= max(3 * np.median(residual), 1e-6)
    rows, cols = np.arange(height)[:, None] / height, np.arange(width)[None, :] / width
    return coefficients[0] + coefficients[1] * rows + coefficients[2] * cols


def _median3(image: np.ndarray) -> np.ndarray:
    """A 3x3 median filter (edges repeated): specks of noise gone, strokes kept."""
    if min(image.shape) < 3:
        return image
    padded = np.pad(image, 1, mode="edge")
    height, width = image.shape
    shifted = [padded[y : y + height, x : x + width] for y in range(3) for x in range(3)]
    return np.median(np.stack(shifted), axis=0)


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (float) resized to `size` (height, width) with antialiasing."""
    from PIL import Image  # only for pictures: training never needs Pillow

    picture = Image.fromarray(image.astype(np.float32))
    return np.asarray(picture.resize((size[1], size[0]), Image.Resampling.LANCZOS))
