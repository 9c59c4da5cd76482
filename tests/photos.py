"""Photo-like pictures made from MNIST test digits: each digit scaled up and drawn, off
centre, onto a larger RGB background (a linear gradient between two colours, noise),
dark on light or light on dark, saved as JPEG of quality 70. What a user's photo of a
handwritten digit looks like to `predict`, with the true class known."""

import pathlib

import numpy as np
from PIL import Image

QUALITY = 70


def make_photos(images: np.ndarray, labels: np.ndarray, folder: pathlib.Path, count: int,
                seed: int = 0) -> tuple[list[pathlib.Path], np.ndarray, list]:  # fmt: skip
    """`count` JPEG photos in `folder` of MNIST digits chosen at random; their paths,
    true classes and where each digit's 28x28 square was drawn ([left, top, right,
    bottom]). Every fourth is light on dark; the others dark on light paper."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), count, replace=False)
    paths, squares = [], []
    for number, index in enumerate(chosen):
        paths.append(folder / f"photo{number:03d}.jpg")
        photo, square = _photo(images[index], rng, light_ink=number % 4 == 3)
        Image.fromarray(photo).save(paths[-1], quality=QUALITY)
        squares.append(square)
    return paths, labels[chosen], squares


def _photo(digit: np.ndarray, rng: np.random.Generator, *, light_ink: bool):
    """One uint8 (height, width, 3) photo of `digit` (uint8 28x28, light on black), and
    the square the digit was drawn in."""
    height, width = rng.integers(240, 481), rng.integers(320, 641)
    side = int(rng.integers(56, min(height, width) * 3 // 4))  # the 28x28 digit, scaled
    alpha = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    alpha = alpha.astype(np.float64)[..., None] / 255
    paper = rng.uniform(150, 240, size=(2, 3)) if not light_ink else rng.uniform(0, 90, (2, 3))
    ink = rng.uniform(0, 60, 3) if not light_ink else rng.uniform(190, 255, 3)
    along = rng.uniform(0, 2 * np.pi)  # the gradient's direction
    ys, xs = np.mgrid[:height, :width]
    t = (np.cos(along) * xs / width + np.sin(along) * ys / height)[..., None]
    t = (t - t.min()) / (t.max() - t.min())
    picture = paper[0] * (1 - t) + paper[1] * t
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    region = picture[top : top + side, left : left + side]
    picture[top : top + side, left : left + side] = region * (1 - alpha) + ink * alpha
    picture += rng.normal(0, rng.uniform(0, 12), picture.shape)  # sensor noise
    square = [int(left), int(top), int(left + side), int(top + side)]
    return np.clip(picture, 0, 255).round().astype(np.uint8), square
