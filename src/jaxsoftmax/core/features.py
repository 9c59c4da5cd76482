"""What a model reads: the one rule that turns a dataset's arrays into float32 inputs.

Two kinds of data come in. uint8 arrays are *pixels*, 0 to 255, scaled into [0, 1] by
PIXEL_MAX, as the tutorial did (IDX files, TFDS, pictures). Float arrays are *features*,
taken as they are: a user's own scaling (MNIST already in [0, 1], standardised columns)
is never undone or redone. The kind is recorded with a trained model, so `predict` and
the exported graph read new data the way training did. NumPy only: JAX arrays follow the
same rule through the same methods, so the compiled step and NumPy agree bitwise.
"""

from __future__ import annotations

import numpy as np

PIXEL_MAX = 255.0  # the largest uint8 pixel
PIXELS, FEATURES = "pixels", "features"
KINDS = (PIXELS, FEATURES)


def kind_of(dtype) -> str:
    """`pixels` for uint8 arrays, `features` for float ones."""
    return PIXELS if np.dtype(dtype) == np.uint8 else FEATURES


def to_inputs(arrays):
    """A batch of examples as float32 rows: pixels / PIXEL_MAX, features as they are.

    Args:
      arrays: NumPy or JAX, uint8 or float, of shape (batch, ...).

    Returns:
      float32 (batch, features), of the same array library.
    """
    rows = arrays.reshape(arrays.shape[0], -1)
    if rows.dtype == np.uint8:
        return rows.astype(np.float32) / np.float32(PIXEL_MAX)
    return rows.astype(np.float32)
