"""Load a dataset through tensorflow-datasets (the optional `tfds` extra) as NumPy arrays.

TensorFlow and tensorflow-datasets are imported only when this source is used, so the rest
of jaxsoftmax never pays their import time (seconds) or needs them installed.
"""

import contextlib
import os

import numpy as np

from jaxsoftmax.catalog import DatasetSpec
from jaxsoftmax.errors import DataError

_INSTALL_HINT = "--source tfds needs tensorflow-datasets: pip install 'jaxsoftmax[tfds]'"

# Examples per tf.data batch while copying a split into NumPy. Not tfds's `batch_size=-1`: that
# sizes its one batch from the split metadata and falls back to sys.maxsize where the metadata
# has no split sizes (as under `tfds.testing.mock_data`), which aborts the whole process inside
# TensorFlow instead of raising.
_COPY_BATCH_SIZE = 10_000

# Enough of a failure's first line to name it; the whole exception stays as `__cause__`.
_MAX_CAUSE_CHARS = 300


def load_tfds_arrays(
    spec: DatasetSpec, *, data_dir: str | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Loads the train and test splits of `spec.tfds_name` from tensorflow-datasets.

    Args:
      spec: the dataset; only its `tfds_name` is used.
      data_dir: where tfds keeps prepared datasets; None for tfds's default
        (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
      download: whether tfds may download and prepare a dataset it does not find.

    Returns:
      `(train_images, train_labels, test_images, test_labels, num_classes)`: images are uint8
      of shape (N, H, W), labels int32 of shape (N,) with values in [0, num_classes).

    Raises:
      DataError: tensorflow-datasets is not installed, tfds could not load the dataset, or the
        dataset is not single-channel uint8 images with integer labels.
    """
    tfds = _import_tfds()
    try:
        splits, info = tfds.load(
            spec.tfds_name,
            split=["train", "test"],
            as_supervised=True,
            with_info=True,
            data_dir=data_dir,
            download=download,
        )
        # Reading happens while iterating, so a corrupt or missing file fails in here too.
        (train_images, train_labels), (test_images, test_labels) = (
            _split_to_numpy(tfds, dataset) for dataset in splits
        )
        num_classes = int(info.features["label"].num_classes)
    except Exception as error:  # tfds and TF fail with many unrelated types, none of ours.
        raise DataError(_load_failure_message(spec, data_dir, error)) from error

    train_images = _grayscale_images(spec, "train", train_images)
    test_images = _grayscale_images(spec, "test", test_images)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"tfds {spec.tfds_name!r}: train images are {train_images.shape[1:]} "
            f"but test images are {test_images.shape[1:]}"
        )
    train_labels = _class_labels(spec, "train", train_labels, num_classes)
    test_labels = _class_labels(spec, "test", test_labels, num_classes)
    return train_images, train_labels, test_images, test_labels, num_classes


def _import_tfds():
    """Imports tensorflow-datasets and TensorFlow, set up to stay out of JAX's way."""
    # TensorFlow reads this once, at import, to drop its C++ INFO and WARNING lines; setdefault
    # leaves a level the user chose alone. (A few lines TF prints before its logging is set up,
    # such as the oneDNN notice, ignore it.)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        # tensorflow_datasets first: it is the one users lack, and it imports in a fraction of
        # the seconds TensorFlow takes.
        import tensorflow_datasets as tfds  # noqa: I001
        import tensorflow as tf
    except ImportError as error:
        raise DataError(_INSTALL_HINT) from error
    # JAX owns the accelerators. With a full `tensorflow` (the extra installs tensorflow-cpu),
    # TF would otherwise reserve most of each GPU's memory for its input pipeline.
    # RuntimeError: TF already initialised its devices earlier in this process; leave them.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    return tfds


def _split_to_numpy(tfds, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Copies a supervised `(image, label)` tf.data split into two NumPy arrays."""
    batches = list(tfds.as_numpy(dataset.batch(_COPY_BATCH_SIZE)))
    if not batches:
        return np.zeros((0,), np.uint8), np.zeros((0,), np.int64)
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return images, labels


def _load_failure_message(spec: DatasetSpec, data_dir: str | None, error: Exception) -> str:
    """One line naming the dataset, the cause, and what the user can do instead."""
    lines = str(error).strip().splitlines()
    cause = type(error).__name__ + (f": {lines[0][:_MAX_CAUSE_CHARS]}" if lines else "")
    where = f" in {data_dir}" if data_dir else ""
    # Not `tfds build`: tensorflow-datasets 4.9.10's command line needs apache-beam to start.
    return (
        f"tfds could not load {spec.tfds_name!r}{where} ({cause}); let tfds download and prepare "
        "it once with network access, or use --source idx"
    )


def _grayscale_images(spec: DatasetSpec, split: str, images: np.ndarray) -> np.ndarray:
    """Drops a trailing channel axis of size 1, checking for uint8 (N, H, W) images."""
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) == 0:
        raise DataError(
            f"tfds {spec.tfds_name!r} {split} images are {images.dtype} {images.shape}; "
            "expected a non-empty uint8 (N, H, W) or (N, H, W, 1) array"
        )
    return images


def _class_labels(
    spec: DatasetSpec, split: str, labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """Checks that labels are integers in [0, num_classes) and returns them as int32."""
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
        raise DataError(
            f"tfds {spec.tfds_name!r} {split} labels are {labels.dtype} {labels.shape}; "
            "expected integer class indices of shape (N,)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"tfds {spec.tfds_name!r} {split} labels span [{labels.min()}, {labels.max()}], "
            f"outside the {num_classes} classes its metadata declares"
        )
    return labels.astype(np.int32)
