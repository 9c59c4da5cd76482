"""Load a dataset through tensorflow-datasets (the optional `tfds` extra) as NumPy arrays.

TensorFlow and tensorflow-datasets are imported only when this source is used, so the rest
of jaxsoftmax never pays their import time (seconds) or needs them installed.
"""

import contextlib
import http.client
import logging
import os
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from jaxsoftmax.data.catalog import DatasetSpec
from jaxsoftmax.data.download import describe_error
from jaxsoftmax.errors import DataError

_INSTALL_HINT = "`source`=tfds needs tensorflow-datasets: pip install 'jaxsoftmax[tfds]'"

# Examples per tf.data batch while copying a split into NumPy. Not tfds's `batch_size=-1`: that
# sizes its one batch from the split metadata and falls back to sys.maxsize where the metadata
# has no split sizes (as under `tfds.testing.mock_data`), which aborts the whole process inside
# TensorFlow instead of raising.
_COPY_BATCH_SIZE = 10_000

# Enough of a failure's first line to name it; the whole exception stays as `__cause__`.
_MAX_CAUSE_CHARS = 300

# Asked once, before tfds downloads anything, whether it could: offline, tfds itself retries each
# file ten times with growing pauses, for about three and a half minutes, behind progress bars and
# urllib3 warnings. This host is where tfds looks first (prepared datasets in gs://tfds-data,
# which it tries by default) and where MNIST's own files are, so its answer is the one that
# matters. urllib reads the same proxy variables (HTTPS_PROXY, NO_PROXY, ...) as the `requests`
# library tfds downloads with, so the probe goes the way tfds's downloads would.
_DOWNLOAD_PROBE_URL = "https://storage.googleapis.com/"
# Bounds the whole probe, name lookup included (which a socket timeout does not bound).
_DOWNLOAD_PROBE_TIMEOUT_S = 5.0


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
      DataError: tensorflow-datasets is not installed, the dataset is not prepared and cannot be
        downloaded from here, tfds could not load it, or it is not single-channel uint8 images
        with integer labels.
    """
    tfds = _import_tfds()
    if download:
        _check_prepared_or_downloadable(tfds, spec, data_dir)
    _import_tensorflow()
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
    """Imports tensorflow-datasets, which leaves TensorFlow unimported until it is needed."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(_INSTALL_HINT) from error
    return tfds


def _import_tensorflow() -> None:
    """Imports TensorFlow, set up to stay out of JAX's way."""
    # TensorFlow reads this once, at import, to drop its C++ INFO and WARNING lines; setdefault
    # leaves a level the user chose alone. (A few lines TF prints before its logging is set up,
    # such as the oneDNN notice, ignore it.)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise DataError(_INSTALL_HINT) from error
    # JAX owns the accelerators. With a full `tensorflow` (the extra installs tensorflow-cpu),
    # TF would otherwise reserve most of each GPU's memory for its input pipeline.
    # RuntimeError: TF already initialised its devices earlier in this process; leave them.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")


def _check_prepared_or_downloadable(tfds, spec: DatasetSpec, data_dir: str | None) -> None:
    """Raises a `DataError` saying what to do if tfds would have to download but cannot."""
    try:
        # tfds warns through absl about every half-written dataset folder it passes, such as
        # one a failed download left; whether the dataset is prepared is all this asks.
        with _absl_warnings_hidden():
            builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
            if builder.is_prepared():
                return
    except Exception as error:  # tfds fails with many unrelated types, none of ours.
        raise DataError(_load_failure_message(spec, data_dir, error)) from error
    reason = _download_blocker(_DOWNLOAD_PROBE_URL, _DOWNLOAD_PROBE_TIMEOUT_S)
    if reason is not None:
        raise DataError(_cannot_download_message(spec, str(builder.data_dir_root), reason))


@contextlib.contextmanager
def _absl_warnings_hidden():
    """Drops absl's (and so tfds's) Python log records below ERROR while the block runs."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_logger.setLevel(level)


def _download_blocker(url: str, timeout_s: float) -> str | None:
    """Why nothing could be downloaded from `url`'s host right now, or None if it answers.

    Any answer at all counts, an HTTP error or a failed TLS handshake included: those show that
    the network works, and tfds (whose certificate store may differ from Python's) should try.
    Only a host that cannot be reached in `timeout_s` seconds, through the proxy the environment
    names if any, stops it.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    proxy = urllib.request.getproxies().get(parts.scheme)
    where = (
        f"{host} through proxy {proxy}" if proxy and not urllib.request.proxy_bypass(host) else host
    )
    failures: list[BaseException] = []
    # A daemon thread, because a name lookup ignores socket timeouts and may hang for longer.
    probe = threading.Thread(target=_request_head, args=(url, timeout_s, failures), daemon=True)
    probe.start()
    probe.join(timeout_s)
    if probe.is_alive():
        return f"{where}: no answer in {timeout_s:g} s"
    if not failures:
        return None
    return f"{where}: {describe_error(failures[0])}"


def _request_head(url: str, timeout_s: float, failures: list[BaseException]) -> None:
    """Sends a HEAD request to `url`; appends to `failures` the error if the host did not answer."""
    try:
        # A fresh opener reads the proxy variables now; `urlopen`'s shared one keeps those of
        # its first call in the process.
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.build_opener().open(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as error:
        error.close()  # An HTTP error is an answer.
    except urllib.error.URLError as error:
        if not isinstance(error.reason, ssl.SSLError):
            failures.append(error)
    except (ssl.SSLError, http.client.HTTPException):
        pass  # The host answered, if not as expected.
    except OSError as error:  # a timeout or a reset while reading the answer
        failures.append(error)


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
        "it once with network access, or use `source`=idx"
    )


def _cannot_download_message(spec: DatasetSpec, data_dir_root: str, reason: str) -> str:
    """One line saying that tfds would have to download, why it cannot, and what to do."""
    prepare_command = (
        f'python -c "import tensorflow_datasets as tfds; tfds.load({spec.tfds_name!r})"'
    )
    # Not `tfds build`: tensorflow-datasets 4.9.10's command line needs apache-beam to start.
    return (
        f"tfds has no prepared {spec.tfds_name!r} in {data_dir_root} and cannot download it "
        f"({reason}). Prepare it on a machine with network access: {prepare_command}, then copy "
        f"~/tensorflow_datasets/{spec.tfds_name} from there into {data_dir_root}; or use the "
        "default `source`=idx, which reads IDX files from `data_dir`=DIR or fetches them"
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
