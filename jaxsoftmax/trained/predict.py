"""Classifying files of images with a trained model: pictures, IDX images files, .npy arrays."""

import pathlib
from collections.abc import Sequence

from jaxsoftmax.data import images
from jaxsoftmax.sweep.results import float32_value
from jaxsoftmax.trained.run import Model


def predict_files(
    model: Model, files: Sequence[pathlib.Path], *, invert: bool | None, top: int
) -> list[dict]:
    """Each image's best `top` classes: [{file, index, top: [{class, name, probability}]}]."""
    predictions = []
    for path in files:
        batch = images.read_images(path, model.image_shape, background=model.background,
                                   invert=invert)  # fmt: skip
        probabilities = model.predict_proba(batch)
        for index, row in enumerate(probabilities):
            best = row.argsort()[::-1][: min(top, len(row))]
            predictions.append({
                "file": str(path),
                "index": index if len(batch) > 1 else None,
                "top": [
                    {"class": int(k), "name": model.class_names[k],
                     "probability": float32_value(row[k])}
                    for k in best
                ],
            })  # fmt: skip
    return predictions
