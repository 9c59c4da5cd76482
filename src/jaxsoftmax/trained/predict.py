"""Classifying files of images with a trained model: pictures, IDX images files, .npy arrays."""

import pathlib
from collections.abc import Sequence

from jaxsoftmax.core import host
from jaxsoftmax.data import images
from jaxsoftmax.errors import DataError
from jaxsoftmax.sweep.results import float32_value
from jaxsoftmax.trained.run import Model


def predict_files(
    model: Model,
    files: Sequence[pathlib.Path],
    *,
    invert: bool | None = None,
    top: int = 3,
    raw: bool = False,
) -> tuple[list[dict], list[str]]:
    """Each image's best `top` classes, [{file, index, top: [{class, name, probability}],
    prepared}], of every file given and every file in a folder given (sorted; hidden ones
    left out); and a one-line reason for each file that could not be classified (the
    others are). `prepared` says what was done to a picture (see `images.read_images`;
    `raw`: only padded and resized), None for arrays."""
    predictions, errors = [], []
    for path in _expanded(files, errors):
        try:
            batch, prepared = images.read_images(
                path, model.image_shape, background=model.background, invert=invert,
                framing=model.framing, raw=raw,
            )  # fmt: skip
        except DataError as error:
            errors.append(str(error))
            continue
        logits = model.logits(batch)
        probabilities = host.softmax(logits)
        for index, (row, best) in enumerate(zip(probabilities, host.ranked(logits, top),
                                                strict=True)):  # fmt: skip
            predictions.append({
                "file": str(path),
                "index": index if len(batch) > 1 else None,
                "top": [
                    {"class": int(k), "name": model.class_names[k],
                     "probability": float32_value(row[k])}
                    for k in best
                ],
                "prepared": prepared,
            })  # fmt: skip
    return predictions, errors


def _expanded(files: Sequence[pathlib.Path], errors: list[str]) -> list[pathlib.Path]:
    """`files`, each folder among them replaced by the files in it (an empty one noted in
    `errors`)."""
    found = []
    for path in map(pathlib.Path, files):
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(item for item in path.iterdir()
                        if item.is_file() and not item.name.startswith("."))  # fmt: skip
        if not inside:
            errors.append(f"{path}: a folder with no files to classify")
        found += inside
    return found
