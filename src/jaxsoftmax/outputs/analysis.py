"""Where each model errs on the test set: confusion matrix, accuracy per class, and the
test images it got wrong most confidently, for every model of a small sweep (the best
ANALYSED of a large one), computed with NumPy at the end: for at most ANALYSED models a
compiled program would cost more to compile (0.18 s on the 2-core CPU) than to run."""

import dataclasses

import numpy as np

from jaxsoftmax.core import features, host
from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.sweep.results import SweepResult, float32_or_none

ANALYSED = 30  # models analysed at most
EXAMPLES = 16  # misclassified test images kept per model


@dataclasses.dataclass(frozen=True, kw_only=True)
class Analysis:
    """One model's errors on the test set.

    Attributes:
      confusion: int (classes, classes): row = true class, column = predicted class.
      examples: (M,) indices of the test images misclassified most confidently.
      predicted: (M,) what the model said of each; confidence: (M,) its probability.
    """

    confusion: np.ndarray
    examples: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray

    @property
    def class_accuracy(self) -> np.ndarray:
        """(classes,) the share of each class's test images classified right (NaN for a
        class with none)."""
        counts = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diagonal(self.confusion) / counts

    def to_json(self) -> dict:
        """What results.json keeps: the matrix and the accuracy per class."""
        return {
            "confusion_matrix": self.confusion.tolist(),
            "class_accuracy": [float32_or_none(value) for value in self.class_accuracy],
        }


def _analyse(weights, biases, images, labels, *, num_classes: int, examples: int):
    """Confusion matrices (K, C, C) and the `examples` most confident errors of K models.

    Args:
      weights: float32 (K, features, classes); biases: (K, classes).
      images: uint8 pixels or float features (N, features); labels: int (N,).
    """
    inputs = features.to_inputs(images)  # as the compiled step reads them
    logits = np.einsum("nf,kfc->knc", inputs, weights, optimize=True) + biases[:, None]
    confidence = host.softmax(logits).max(axis=-1)  # the predicted class's probability
    predicted = host.predicted(logits)  # (K, N)
    cells = labels[None] * num_classes + predicted
    confusion = np.stack([np.bincount(row, minlength=num_classes**2) for row in cells])
    wrong = np.where(predicted != labels[None], confidence, -1.0)
    where = np.argsort(-wrong, axis=1, kind="stable")[:, :examples]  # ties: lower index first
    return (
        confusion.reshape(-1, num_classes, num_classes), where,
        np.take_along_axis(predicted, where, axis=1), np.take_along_axis(wrong, where, axis=1),
    )  # fmt: skip


def chosen_models(result: SweepResult, limit: int = ANALYSED) -> list[int]:
    """The models analysed, in sweep order: every healthy finished model with kept
    parameters, or the `limit` best of them by final validation accuracy (without a
    validation split, by test accuracy: for display only, never to choose settings)."""
    if result.params is None:
        return []
    held_out = result.config.validation and result.validation_accuracy is not None
    ranked = result.ranked("validation_accuracy" if held_out else "test_accuracy")
    return sorted(ranked[:limit].tolist())


def analyse(result: SweepResult, dataset: Dataset, models: list[int]) -> dict[int, Analysis]:
    """Each of `models`' errors on `dataset`'s test set (see `Analysis`)."""
    if not models or not len(dataset.test_labels):  # no test split: nothing to analyse
        return {}
    shown = min(EXAMPLES, len(dataset.test_labels))
    outputs = _analyse(
        result.params["w"][models], result.params["b"][models],
        dataset.test_images.reshape(len(dataset.test_images), -1), dataset.test_labels,
        num_classes=dataset.num_classes, examples=shown,
    )  # fmt: skip
    confusion, where, predicted, confidence = map(np.asarray, outputs)
    analyses = {}
    for row, k in enumerate(models):
        wrong = confidence[row] >= 0  # fewer errors than EXAMPLES: the rest are fillers
        analyses[k] = Analysis(
            confusion=confusion[row],
            examples=where[row][wrong],
            predicted=predicted[row][wrong],
            confidence=confidence[row][wrong],
        )
    return analyses
