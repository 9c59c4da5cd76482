"""What a download says: one calm line per source while it runs, one line if it fails.

Reasons are a few words each (`describe_error`), so the user reads what happened without
a traceback: `mirror X unreachable (host not found), trying Y ...`.
"""

import dataclasses
import http.client
import pathlib
import socket
import ssl
import urllib.error
from collections.abc import Callable, Sequence

from jaxsoftmax.data.catalog import IDX_FILES, DatasetSpec

# Keeps the one-line error readable even when a source fails with a long message.
_MAX_REASON_CHARS = 60
_MAX_SOURCE_CHARS = 50
_MAX_REASONS_PER_SOURCE = 3


class SourceError(Exception):
    """A source delivered something unusable; the message is a short reason for the user."""


@dataclasses.dataclass(kw_only=True)
class FetchProgress:
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


def add_reason(reasons_by_source: dict[str, list[str]], source: str, reason: str) -> None:
    """Records `reason` for `source` once, keeping first-seen order."""
    reasons = reasons_by_source.setdefault(source, [])
    if reason not in reasons:
        reasons.append(reason)


def means_unreachable(error: BaseException) -> bool:
    """Tells whether an error says the server itself is unusable, not just one file on it."""
    if isinstance(error, urllib.error.HTTPError):
        return False
    return isinstance(error, urllib.error.URLError | TimeoutError | ConnectionError)


def describe_error(error: BaseException) -> str:
    """A few words saying why a source failed, for a one-line message."""
    if isinstance(error, SourceError):
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


def describe_failure(
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
        shown_reasons = [shorten(reason, _MAX_REASON_CHARS) for reason in reasons]
        if len(shown_reasons) > _MAX_REASONS_PER_SOURCE:
            shown_reasons = [*shown_reasons[:_MAX_REASONS_PER_SOURCE], "..."]
        source_texts.append(f"{shorten(source, _MAX_SOURCE_CHARS)}: {', '.join(shown_reasons)}")
    sources_text = "; ".join(source_texts) if source_texts else "no sources configured"
    return (
        f"could not fetch dataset {spec.name!r}: {missing_text} ({sources_text}). "
        f"Put the four IDX files ({', '.join(IDX_FILES)}; each optionally .gz) "
        f"into {target_dir} or pass `data_dir`=DIR"
    )


def shorten(text: str, max_chars: int) -> str:
    """`text` on one line, cut to at most `max_chars` characters."""
    one_line = " ".join(text.split())
    if len(one_line) <= max_chars:
        return one_line
    return one_line[: max_chars - 3] + "..."
