"""Bytes a source delivered, checked against the catalog and only then stored.

Only verified bytes are ever written under a dataset file's final name, atomically.
"""

import contextlib
import hashlib
import pathlib
import zlib

from jaxsoftmax import files
from jaxsoftmax.data import idx
from jaxsoftmax.data.catalog import DatasetSpec
from jaxsoftmax.data.fetch_report import SourceError, describe_error
from jaxsoftmax.errors import DataError

# Upper bound on one file, compressed or not, so that a broken or hostile source (or a gzip
# bomb) cannot exhaust memory; the largest MNIST-format file is about 47 MB uncompressed.
MAX_FILE_BYTES = 256 * 2**20


def gunzip(compressed: bytes) -> bytes:
    """Decompresses gzip bytes in memory, refusing output beyond the size bound."""
    try:
        return idx.gunzip(compressed, max_bytes=MAX_FILE_BYTES)
    except idx.GzipTooLarge:
        raise SourceError("decompressed file too large") from None
    except (OSError, EOFError, zlib.error) as error:
        raise SourceError("not valid gzip") from error


def check_sha256(spec: DatasetSpec, name: str, content: bytes) -> None:
    """Raises `SourceError` unless `content` is the dataset's expected file `name`."""
    if hashlib.sha256(content).hexdigest() != spec.sha256[name]:
        raise SourceError("checksum mismatch")


def store_verified(content: bytes, final_path: pathlib.Path) -> None:
    """Writes verified bytes atomically, then removes a corrupt copy stored in the other form.

    A corrupt `<name>` left beside a fresh `<name>.gz` (or the reverse) would shadow or
    contradict it for whoever reads the folder next, and it failed verification already.
    """
    if final_path.name.endswith(".gz"):
        other_form = final_path.with_name(final_path.name.removesuffix(".gz"))
    else:
        other_form = gz_path(final_path)
    try:
        write_atomically(content, final_path)
        with contextlib.suppress(FileNotFoundError):  # none, or a concurrent run removed it
            other_form.unlink()
    except OSError as error:
        raise DataError(f"cannot write {final_path}: {describe_error(error)}") from error


def write_atomically(content: bytes, final_path: pathlib.Path) -> None:
    """Writes `content` to `final_path` so that readers see either nothing or all of it."""
    with files.atomic_writer(final_path, suffix=".part") as handle:
        handle.write(content)


def gz_path(file_path: pathlib.Path) -> pathlib.Path:
    """The gzip-compressed sibling of an IDX file path."""
    return file_path.with_name(file_path.name + ".gz")
