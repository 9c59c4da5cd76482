"""The model's math in NumPy, for the host: what `predict`, the error analysis and a
search's test evaluation compute without JAX. One owner for the NumPy softmax.

The predicted class is the argmax of the logits (ties: the lowest class), as the
compiled evaluation picks it (`model.accuracy`); probabilities are for display.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis, computed stably (the largest logit subtracted)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def predicted(logits: np.ndarray) -> np.ndarray:
    """The predicted class along the last axis: the first largest logit."""
    return logits.argmax(axis=-1)


def ranked(logits: np.ndarray, top: int) -> np.ndarray:
    """The `top` classes from most to least likely along the last axis: by logit, ties
    the lowest class first, a NaN above every number (as NumPy's argmax takes it), so the
    first is `predicted`'s (probabilities can round to equal where logits differ)."""
    missing = np.isnan(logits)
    descending = np.where(missing, 0, -logits)
    return np.lexsort((descending, ~missing), axis=-1)[..., :top]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean cross-entropy of (N, classes) float32 logits for int labels (N,), with
    the probability of the true class floored at float32's smallest normal, as log(0)
    would be infinite."""
    picked = softmax(logits)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, np.finfo(np.float32).tiny)).mean())
