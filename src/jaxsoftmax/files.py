"""The files a run leaves in its log directory, and writing a file so that readers find the
old one or the whole new one, never half."""

import contextlib
import os
import pathlib
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

# What a run writes into its log directory besides TensorBoard's event files.
RESULTS_FILE = "results.json"
CHECKPOINT_FILE = "checkpoint.npz"
FIGURES_DIR = "figures"
# The figures `plots.report` writes into FIGURES_DIR.
FIGURE_FILES = ("accuracy_vs_learning_rate.png", "confusion.png", "loss.png", "accuracy.png",
                "weights.png")  # fmt: skip
# Held (flock) by the run writing to a log directory, so that a second one is refused.
LOCK_FILE = ".jaxsoftmax.lock"


def given_path(value: str | os.PathLike, failure: Callable[[str], Exception]) -> pathlib.Path:
    """`value` as a path, refusing an empty or blank one (which would mean the current
    folder) with what `failure` makes of the reason."""
    if not str(os.fspath(value)).strip():
        raise failure("is empty; give a folder or file name (use . for the current folder)")
    return pathlib.Path(value)


def make_folder(path: pathlib.Path, failure: Callable[[str], Exception]) -> pathlib.Path:
    """Creates the folder `path` and its parents (fine if it exists); where the machine
    refuses, raises what `failure` makes of its reason (a one-line library error)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise failure(error.strerror.lower() if error.strerror else str(error)) from None
    return path


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike, *, mode: str = "wb", suffix: str = ".tmp"
) -> Iterator[IO]:
    """Yields a new file beside `path`; when the block ends, it is flushed to disk and
    renamed over `path`. If the block (or the rename) fails, it is removed and `path`
    stays as it was.

    The temporary file lives in the same folder, so the rename stays within one file
    system, where it is atomic; its name starts with a dot and ends with `suffix`.
    """
    path = pathlib.Path(path)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    temporary = pathlib.Path(name)
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(0o644)  # mkstemp makes it private; what we write is not secret
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
