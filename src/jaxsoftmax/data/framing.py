"""How a dataset frames its images, measured from the images themselves.

MNIST was made by a known recipe: each digit's ink box scaled to fit 20x20 keeping its
proportions, then placed in the 28x28 image with its centre of mass at the centre.
Fashion-MNIST fills the whole image and centres the box. `framing_of` measures which
recipe a dataset follows (so a run records it, and `photos.frame` applies it to a
user's picture).
"""

import numpy as np


def framing_of(images: np.ndarray, background: str) -> dict:
    """How `images` (uint8 (N, height, width)) are framed: {"box": the median side of the
    ink's box, in pixels; "centre": "mass" where the ink's centre of mass is at the
    image's centre more closely than its box's centre is, else "box"}."""
    ink = images if background == "dark" else 255 - images
    ink = ink[:1000].astype(np.float64)
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    first_row, last_row = _span(rows)
    first_col, last_col = _span(cols)
    box = np.maximum(last_row - first_row, last_col - first_col) + 1
    height, width = images.shape[1:]
    mass = np.maximum(ink.sum(axis=(1, 2)), 1)
    mass_y = (ink.sum(axis=2) * np.arange(height)).sum(axis=1) / mass
    mass_x = (ink.sum(axis=1) * np.arange(width)).sum(axis=1) / mass
    off_mass = np.abs(mass_y - height / 2).mean() + np.abs(mass_x - width / 2).mean()
    off_box = (np.abs((first_row + last_row + 1) / 2 - height / 2).mean()
               + np.abs((first_col + last_col + 1) / 2 - width / 2).mean())  # fmt: skip
    return {"box": int(np.median(box)), "centre": "mass" if off_mass < off_box else "box"}


def default_framing(image_shape: tuple[int, int]) -> dict:
    """MNIST's framing scaled to `image_shape`: for runs that recorded none."""
    return {"box": round(max(image_shape) * 20 / 28), "centre": "mass"}


def border(pixels: np.ndarray) -> np.ndarray:
    """The pixels of an image's four edges, each once."""
    return np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])


def _span(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last True of each row (0, -1 where none)."""
    first = rows.argmax(axis=1)
    last = rows.shape[1] - 1 - rows[:, ::-1].argmax(axis=1)
    return first, np.where(rows.any(axis=1), last, first - 1)
