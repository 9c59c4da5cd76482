"""Hostile and careless input, as a fresh process meets it: every case is generated here
(no fixture file), run as a command, and must end with a non-zero exit, one line on
stderr and no traceback, within a bounded peak memory (the process's own high-water
mark, from wait4), leaving nothing outside its folder changed.

Grouped by the class of input each guard covers: files whose size a header or a picture
promises (bounded before anything is read or decoded), and files that are not files."""

import contextlib
import gzip
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest

from .conftest import REPO
from .test_trained import run_main as run_in_process

PEAK_MB = 1024


# Runs a command and writes its own peak RSS (KB) and exit status to the file argv[1].
# A small process of its own: a child's peak counts the memory of the process it was
# forked from (the test process, gigabytes in a full suite run), so the command is forked
# from this one instead.
LAUNCHER = """
import os, subprocess, sys, threading
report, timeout, command = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
process = subprocess.Popen(command)
timer = threading.Timer(timeout, process.kill)
timer.start()
_, status, usage = os.wait4(process.pid, 0)
timer.cancel()
process.returncode = os.waitstatus_to_exitcode(status)
with open(report, "w") as out:
    out.write(f"{usage.ru_maxrss} {process.returncode}")
"""


def run_command(module: str, args: list, *, watch: list, timeout: float = 120,
                cwd=None) -> dict:  # fmt: skip
    """Runs `python -m module args` in a fresh process, in an empty working folder of its
    own (or `cwd`): its exit code, stdout, stderr and peak resident memory in MB (that
    process's own, from wait4); killed after `timeout`. Fails if it left anything in the
    working folder or changed anything under the folders in `watch` (the case's files, the
    run it reads) outside its log directory (`--logdir`)."""
    logdir = args[args.index("--logdir") + 1] if "--logdir" in args else None
    before = [tree_of(root, logdir) for root in watch]
    with tempfile.TemporaryDirectory() as work:
        report = pathlib.Path(work) / "report"
        folder = pathlib.Path(cwd) if cwd else pathlib.Path(work) / "cwd"
        folder.mkdir(exist_ok=True)
        started_with = tree_of(folder, logdir)
        command = [sys.executable, "-m", module, *map(str, args)]
        done = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(report), str(timeout), *command],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=folder,
            timeout=timeout + 60,
        )  # fmt: skip
        peak_kb, status = map(int, report.read_text().split())
        assert tree_of(folder, logdir) == started_with, "it wrote into its working folder"
    after = [tree_of(root, logdir) for root in watch]
    assert after == before, "it changed files outside its log directory"
    return {"status": status, "out": done.stdout, "err": done.stderr, "peak_mb": peak_kb / 1024}


def tree_of(root: pathlib.Path, logdir) -> dict:
    """Every path under `root` but those in `logdir`, with its size, time and content's
    hash (links as links: a data folder of links to the real MNIST)."""
    skip = pathlib.Path(logdir).absolute() if logdir else None
    found = {}
    for path in [root, *root.rglob("*")]:
        if skip is not None and (path.absolute() == skip or skip in path.absolute().parents):
            continue
        info = path.lstat()
        digest = zlib.crc32(path.read_bytes()) if path.is_file() and not path.is_symlink() else 0
        found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return found


def one_line_refusal(done: dict, *words: str) -> None:
    assert done["status"] not in (0, None), done
    assert "Traceback" not in done["err"] and done["err"].count("\n") == 1, done["err"]
    for word in words:
        assert word in done["err"], done["err"]
    assert done["peak_mb"] is not None and done["peak_mb"] < PEAK_MB, done


def idx_header(type_code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, type_code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)


def gzip_of_zeros(header: bytes, zeros: int) -> bytes:
    """A gzip file of `header` and then `zeros` zero bytes, compressed as it is written
    (so a 4 GiB inflation is a few MB here)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts, block = [compressor.compress(header)], bytes(2**20)
    for _ in range(zeros // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(bytes(zeros % len(block))))
    return b"".join(parts) + compressor.flush()


def mnist_folder(folder: pathlib.Path, mnist_dir: pathlib.Path, **replaced: bytes) -> pathlib.Path:
    """A copy of MNIST's four files (links) with some replaced by `replaced` contents."""
    folder.mkdir()
    for source in mnist_dir.iterdir():
        if source.name.endswith(".gz"):
            name = source.name.removesuffix(".gz")
            if name in replaced:
                (folder / source.name).write_bytes(replaced[name])
            else:
                (folder / source.name).symlink_to(source.resolve())
    return folder


# --- files whose size the header promises ------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        # 18 MB in the issue: a header of 60000x28x28 images inflating to 4 GiB (here 1).
        (lambda: gzip_of_zeros(idx_header(8, (60000, 28, 28)), 2**30), ["trailing bytes"]),
        (lambda: gzip.compress(idx_header(8, (2**31, 2**31, 4))), ["too big to read"]),
        (lambda: gzip.compress(bytes([0, 0, 8, 255]) + bytes(1020)), ["255 dimensions"]),
        (lambda: gzip.compress(idx_header(8, (60000, 28, 28)) + bytes(100)), ["truncated"]),
    ],
    ids=["inflates-to-1GiB", "dims-overflow", "255-dims", "truncated"],
)
def test_an_idx_file_is_read_no_further_than_its_header_promises(
    mnist_dir, tmp_path, content, words
):
    folder = mnist_folder(tmp_path / "data", mnist_dir, **{"train-images-idx3-ubyte": content()})
    done = run_command("jaxsoftmax.train", ["--data-dir", folder, "--logdir", tmp_path / "run",
                                             "--steps", "1", "--no-compilation-cache"],
                       watch=[tmp_path])  # fmt: skip
    one_line_refusal(done, "train-images-idx3-ubyte", *words)
    assert not (tmp_path / "run").exists()


def test_a_bad_idx_file_is_read_once(mnist_dir, tmp_path, capsys, monkeypatch):
    """The command line reads local data in a thread beside its imports; a file found but
    invalid is refused from there (it was read again in the main thread), and only data
    found nowhere is fetched by the main thread. Counts the reads (a spy: the real read)."""
    from jaxsoftmax.cli import train as cli
    from jaxsoftmax.data import load

    reads = []
    real = load.read_images
    monkeypatch.setattr(load, "read_images", lambda path: reads.append(path) or real(path))
    truncated = gzip.compress(idx_header(8, (60000, 28, 28)) + bytes(100))
    folder = mnist_folder(tmp_path / "data", mnist_dir, **{"train-images-idx3-ubyte": truncated})
    status, _, err = run_in_process(cli, ["--data-dir", folder, "--logdir", tmp_path / "run",
                                          "--steps", "1", "--quiet"], capsys)  # fmt: skip
    assert status == 1 and "truncated" in err and len(reads) == 1, (err, reads)


def test_a_npy_header_promising_more_than_the_file_holds_is_refused(logged_run, tmp_path):
    logdir, record = logged_run
    path = tmp_path / "huge.npy"
    with open(path, "wb") as handle:  # a header for 10**10 images, and 16 bytes of them
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "|u1", "fortran_order": False, "shape": (10**10, 28, 28)}
        )
        handle.write(bytes(16))
    done = run_command("jaxsoftmax.predict", [logdir, "--run", record["runs"][0]["name"], path],
                       watch=[tmp_path, logdir])  # fmt: skip
    one_line_refusal(done, "huge.npy", "header says")


# --- pictures whose size the header promises ---------------------------------------------


def png_of_size(width: int, height: int, *, pixels: bool = True) -> bytes:
    """A valid grey PNG of width x height white pixels, compressed to a few hundred bytes
    (without `pixels`, the header alone says the size: for pictures refused before any
    decoding)."""
    rows = zlib.compress((b"\0" + b"\xff" * width) * height if pixels else b"\0", 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(1, 200_000), (30_000_000, 1)], ids=["1x200000", "30Mx1"])
def test_a_long_thin_picture_is_classified_in_bounded_memory(logged_run, tmp_path, size):
    """The issue's 274-byte 1x200000 PNG (the process was killed at 24 GB); a 30 KB PNG
    of 30,000,000x1 (shrunk in one step: 1.5 GB)."""
    logdir, record = logged_run
    (tmp_path / "thin.png").write_bytes(png_of_size(*size))
    assert (tmp_path / "thin.png").stat().st_size < 40_000
    done = run_command("jaxsoftmax.predict", [logdir, "--run", record["runs"][0]["name"],
                                               tmp_path / "thin.png"],
                       watch=[tmp_path, logdir])  # fmt: skip
    assert done["status"] == 0 and "thin.png" in done["out"], done
    assert done["peak_mb"] < PEAK_MB, done


@pytest.mark.parametrize("side", [9000, 10_000, 14_000])
def test_a_picture_of_too_many_pixels_is_refused_before_it_is_decoded(logged_run, tmp_path,
                                                                       side):  # fmt: skip
    """81, 100 and 196 million pixels: past Pillow's own warning (89 M: two more lines
    on stderr) and its error (179 M: its words), ours is the one line."""
    logdir, record = logged_run
    (tmp_path / "vast.png").write_bytes(png_of_size(side, side, pixels=side < 10_000))
    done = run_command("jaxsoftmax.predict", [logdir, "--run", record["runs"][0]["name"],
                                               tmp_path / "vast.png"],
                       watch=[tmp_path, logdir])  # fmt: skip
    one_line_refusal(done, "vast.png", "too big to classify", "crop or shrink it")


# --- things that are not files -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_what_is_not_a_regular_file_is_refused_without_reading_it(logged_run, tmp_path, kind):
    logdir, record = logged_run
    path = {"device": pathlib.Path("/dev/zero"), "fifo": tmp_path / "pipe"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    done = run_command("jaxsoftmax.predict", [logdir, "--run", record["runs"][0]["name"], path],
                       timeout=60, watch=[tmp_path, logdir])  # fmt: skip
    one_line_refusal(done, str(path), "not a regular file")


def test_predict_classifies_a_folder_and_says_what_it_cannot(logged_run, mnist, tmp_path, capsys):
    """A folder was refused, and one bad file among many printed nothing for the good ones."""
    from PIL import Image

    from jaxsoftmax.cli import predict

    logdir, record = logged_run
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for k in range(3):
        Image.fromarray(mnist.test_images[k]).save(pictures / f"{k}.png")
    (pictures / "notes.txt").write_text("not a picture")
    (pictures / ".hidden.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    argv = [logdir, "--run", record["runs"][0]["name"], pictures, tmp_path / "missing.png",
            tmp_path / "empty"]  # fmt: skip
    status, out, err = run_in_process(predict, argv, capsys)
    assert status == 1
    assert [line.split(":")[0] for line in out.splitlines()] == [
        str(pictures / f"{k}.png") for k in range(3)
    ]
    assert err.count("\n") == 3 and "notes.txt: not an image" in err
    assert "missing.png: cannot read" in err and "empty: a folder with no files" in err


# --- the log directory: claimed by one run, never the current folder by accident -----------


def test_an_empty_logdir_is_refused_and_nothing_in_the_folder_changes(mnist_dir, tmp_path):
    """`--logdir "$UNSET" --overwrite` in a project folder deleted ./figures/ (with a
    user's file) and replaced ./results.json."""
    project = tmp_path / "project"
    (project / "figures").mkdir(parents=True)
    (project / "figures" / "mine.txt").write_text("a user's file")
    (project / "results.json").write_text('{"mine": true}')
    before = sorted((path.relative_to(project), path.read_bytes()) for path in project.rglob("*")
                    if path.is_file())  # fmt: skip
    for extra in ([], ["--overwrite"]):
        done = run_command("jaxsoftmax.train", ["--data-dir", mnist_dir, "--steps", "1",
                                                 "--logdir", "", *extra], cwd=project,
                           watch=[tmp_path])  # fmt: skip
        one_line_refusal(done, "--logdir", "empty")
    after = sorted((path.relative_to(project), path.read_bytes()) for path in project.rglob("*")
                   if path.is_file())  # fmt: skip
    assert after == before


def test_overwrite_replaces_only_what_a_run_of_ours_wrote(mnist_dir, tmp_path, capsys):
    from jaxsoftmax.cli import train as cli

    logdir = tmp_path / "run"
    common = ["--data-dir", str(mnist_dir), "--steps", "2", "--quiet", "--logdir", str(logdir)]
    assert cli.main([*common, "--learning-rates", "0.002,0.005"]) == 0
    (logdir / "figures").mkdir()
    (logdir / "figures" / "loss.png").write_bytes(b"ours, by name")
    (logdir / "figures" / "notes.txt").write_text("a user's file")
    (logdir / "lr=notes").mkdir()
    (logdir / "lr=notes" / "todo.txt").write_text("a user's folder")
    assert cli.main([*common, "--learning-rates", "0.008", "--overwrite"]) == 0
    names = sorted(path.name for path in logdir.iterdir())
    assert "lr=0.002" not in names and "lr=0.008" in names and "lr=notes" in names
    assert (logdir / "figures" / "notes.txt").read_text() == "a user's file"
    assert not (logdir / "figures" / "loss.png").exists()
    (logdir / "results.json").write_text('{"mine": true}')  # no longer a run of ours
    capsys.readouterr()
    assert cli.main([*common, "--overwrite"]) == 2
    assert "not a jaxsoftmax run's" in capsys.readouterr().err
    assert (logdir / "results.json").read_text() == '{"mine": true}'


def test_a_second_run_into_a_claimed_logdir_is_refused(mnist_dir, tmp_path):
    """Two runs started into one --logdir both exited 0, their files mixed."""
    import fcntl
    import time

    from jaxsoftmax.files import LOCK_FILE

    logdir = tmp_path / "run"
    argv = ["--data-dir", mnist_dir, "--logdir", logdir, "--steps", "3000", "--quiet"]
    first = subprocess.Popen([sys.executable, "-m", "jaxsoftmax.train", *map(str, argv)],
                             cwd=REPO, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for _ in range(600):  # until the first run has claimed the folder
            if (logdir / LOCK_FILE).exists():
                break
            time.sleep(0.05)
        second = run_command("jaxsoftmax.train", argv, watch=[tmp_path])
    finally:
        _, err = first.communicate(timeout=300)
    one_line_refusal(second, "being written by another run")
    assert first.returncode == 0, err
    document = json.loads((logdir / "results.json").read_text())
    assert document["runs"][0]["steps"] == 3000
    with open(logdir / LOCK_FILE) as held:  # free again once the run has ended
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_library_refuses_an_empty_logdir_too(small):
    import jaxsoftmax as js
    from jaxsoftmax.errors import ConfigError

    with pytest.raises(ConfigError, match="`logdir` is empty"):
        js.train_logged(small, js.SweepConfig(steps=2), "")


# --- signals at any moment of start-up ---------------------------------------------------


@contextlib.contextmanager
def as_from_a_terminal():
    """Children started within get SIGINT as from a terminal: a job a script starts in
    the background (as CI may run the suite) inherits it ignored, and Python keeps it so
    until our handlers take it (a SIGINT in CPython's start-up would be lost). Set here in
    this process, not in the child (a `preexec_fn` forks, which JAX warns of)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_at_any_moment_of_start_up_stops_the_run(mnist_dir, tmp_path):
    """SIGTERM 0.2-0.7 s into a run was printed as 'Exception ignored in _xla_gc_callback'
    and lost: the run trained all its steps and exited 0. At 20 moments drawn from the
    first 3 s (SIGTERM or SIGINT), each run must stop with 128 + the signal well before
    its steps end, and a results.json it wrote must say it was interrupted. Seven runs at
    a time (each signalled at its own moment after its own start). The first ~50 ms are
    CPython's own start-up, before any file of ours runs: SIGINT there ends it as CPython
    does (a KeyboardInterrupt traceback of its modules; exit 1 while `site` imports)."""
    import random
    import signal
    import time

    import jaxsoftmax as js

    package = pathlib.Path(js.__file__).parent  # no traceback may pass through our files
    rng = random.Random(27)
    at_once = 7
    cases = [(round(rng.uniform(0, 3), 2), rng.choice([signal.SIGTERM, signal.SIGINT]))
             for _ in range(20)]  # fmt: skip
    tally = {"results.json interrupted": 0, "CPython's start-up": 0}
    for group in range(0, len(cases), at_once):
        running = []
        try:
            for moment, number in cases[group : group + at_once]:
                logdir = tmp_path / f"at-{moment}-{number}"
                argv = ["--data-dir", mnist_dir, "--logdir", logdir, "--steps", "100000",
                        "--quiet", "--no-compilation-cache"]  # fmt: skip
                with as_from_a_terminal():
                    process = subprocess.Popen(
                        [sys.executable, "-m", "jaxsoftmax.train", *map(str, argv)], cwd=REPO,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                    )  # fmt: skip
                running.append((time.monotonic() + moment, moment, number, process, logdir))
            for due, _, number, process, _ in sorted(running, key=lambda case: case[0]):
                time.sleep(max(0.0, due - time.monotonic()))
                process.send_signal(number)
            for _, moment, number, process, logdir in running:
                try:
                    _, err = process.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"{number!r} at {moment} s was lost") from None
                where = f"{number!r} at {moment} s: {process.returncode} {err}"
                assert "Exception ignored" not in err, where
                if "Traceback" in err:  # CPython's own start-up, before any file of ours runs:
                    # it reports a KeyboardInterrupt (exit 1 where `site` or runpy imports).
                    assert "KeyboardInterrupt" in err and str(package) not in err, where
                    tally["CPython's start-up"] += 1
                    continue
                # -number: the signal came before Python ran any of ours and ended the
                # process as its default does, which a shell reports as 128 + number too.
                assert process.returncode in (128 + number, -number), where
                if (logdir / "results.json").exists():
                    written = json.loads((logdir / "results.json").read_text())
                    assert written["interrupted"] is True, where
                    tally["results.json interrupted"] += 1
        finally:  # none left running (or unread) when a case fails
            for *_, process, _ in running:
                if process.poll() is None:
                    process.kill()
                process.communicate()
    print(f"20 signals at {sorted(moment for moment, _ in cases)} s: {tally}")


def test_a_signal_to_predict_at_work_stops_it_as_any_command(logged_run, tmp_path):
    """Past start-up, predict, export and report raise on a signal (what they write is
    undone) instead of keeping the start-up handler, which ended them at once with 'while
    starting' and left an export's temporary file behind."""
    import signal
    import time

    from PIL import Image

    logdir, record = logged_run
    Image.fromarray(np.full((900, 1200), 200, np.uint8)).save(tmp_path / "page.png")
    (tmp_path / "many").mkdir()
    for index in range(3000):  # a minute of work
        (tmp_path / "many" / f"{index:04d}.png").symlink_to(tmp_path / "page.png")
    argv = [logdir, "--run", record["runs"][0]["name"], tmp_path / "many"]
    command = [sys.executable, "-m", "jaxsoftmax.predict", *map(str, argv)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and err == "interrupted\n", (process.returncode, err)


# --- sizes known before work starts: checked against the free memory ------------------------


def values(count: int, scale: float) -> str:
    return ",".join(f"{scale * (k + 1):.6g}" for k in range(count))


HUGE_GRID = (f"learning_rate={values(100, 1e-3)} momentum={values(100, 9e-3)} "
             f"weight_decay={values(100, 1e-4)} seed=0,1,2,3")  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--grid", HUGE_GRID], ["4,000,000 models", "metrics"]),
        (["--num-classes", "1000000"], ["1,000,000 classes", "fewer classes"]),
    ],
    ids=["a-4-million-model-grid", "a-million-classes"],
)
def test_what_would_not_fit_in_memory_is_refused_before_it_starts(mnist_dir, tmp_path, argv,
                                                                  words):  # fmt: skip
    """A 10**8-model grid reached 20 GB in 90 s; --num-classes 1000000 was killed at 24 GB."""
    done = run_command("jaxsoftmax.train", ["--data-dir", mnist_dir, "--logdir", tmp_path / "run",
                                             "--no-compilation-cache", "--quiet",
                                             *argv], watch=[tmp_path])  # fmt: skip
    one_line_refusal(done, "GiB of memory", "free", *words)


def test_a_checkpoint_promising_10_to_the_18_steps_is_refused_on_resume(small, tmp_path):
    """Resuming a checkpoint whose config says 10**18 steps raised '711 PiB' as a traceback."""
    import dataclasses

    import jaxsoftmax as js
    from jaxsoftmax.sweep import checkpoint

    js.train_logged(small, js.SweepConfig(steps=2, learning_rates=(0.5,)), tmp_path / "run")
    saved, _ = checkpoint.load(tmp_path / "run" / checkpoint.CHECKPOINT_FILE)
    huge = dataclasses.replace(saved, config=dataclasses.replace(saved.config, steps=10**18))
    with pytest.raises(js.ConfigError, match="GiB of memory"):
        js.restore_run(small, huge)


# --- what a run's folder says about itself: checked where it is read --------------------------


def edited_run(logged_run, tmp_path, edit) -> tuple[pathlib.Path, str]:
    """A copy of the logged run with its results.json changed by `edit(document)`."""
    import shutil

    logdir, record = logged_run
    copy = tmp_path / "run"
    shutil.copytree(logdir, copy, ignore=shutil.ignore_patterns(".jaxsoftmax.lock"))
    document = json.loads((copy / "results.json").read_text())
    edit(document)
    (copy / "results.json").write_text(json.dumps(document))
    return copy, record["runs"][0]["name"]


def test_class_names_reach_the_terminal_escaped(logged_run, tmp_path):
    """A class name holding an ANSI sequence and a new line moved the cursor, faked lines."""
    from PIL import Image

    def poison(document):
        document["data"]["class_names"][0] = "\x1b[2J\x1b[Hzero\nfake: 9 (100.0%)"

    logdir, name = edited_run(logged_run, tmp_path, poison)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    argv = [logdir, "--run", name, "--top", "10", tmp_path / "blank.png"]
    done = run_command("jaxsoftmax.predict", argv, watch=[tmp_path])
    out = done["out"]
    assert done["status"] == 0 and "\x1b" not in out and out.count("\n") == 1, done
    assert "\\x1b[2J\\x1b[Hzero\\nfake" in out and done["peak_mb"] < PEAK_MB


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d["runs"].append(dict(d["runs"][0])), "twice"),
        (lambda d: d["data"].update(image_shape="28x28"), "image_shape must be"),
        (lambda d: d["data"].update(class_names=[1, 2]), "names must be text"),
        (lambda d: d["data"].update(framing={"box": 0, "centre": "mass"}), "data.framing must"),
        (lambda d: d["data"].update(framing={"box": 20}), "data.framing must be"),
    ],
    ids=["duplicate-names", "shape-as-text", "names-as-numbers", "box-0", "no-centre"],
)
def test_a_results_file_describing_its_models_wrongly_is_one_line(
    logged_run, tmp_path, edit, words
):
    logdir, name = edited_run(logged_run, tmp_path, edit)
    (tmp_path / "x.npy").write_bytes(b"")
    done = run_command("jaxsoftmax.predict", [logdir, "--run", name, tmp_path / "x.npy"],
                       watch=[tmp_path])  # fmt: skip
    one_line_refusal(done, words)
    assert done["status"] == 1 and done["out"] == "", done


def test_export_never_writes_over_what_is_not_a_regular_file(logged_run, tmp_path):
    """`export -o /dev/null --overwrite` would have replaced /dev/null (as root)."""
    logdir, record = logged_run
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "target").write_text("a user's file")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for output in (tmp_path / "pipe", tmp_path / "link"):
        done = run_command("jaxsoftmax.export", [logdir, "--run", record["runs"][0]["name"],
                                                  "-o", output, "--overwrite"],
                           watch=[tmp_path, logdir])  # fmt: skip
        one_line_refusal(done, "not a regular file")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target").read_text() == "a user's file"
    assert not (tmp_path / "pipe").is_file()


def test_a_symlink_loop_for_a_folder_is_one_line(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    done = run_command("jaxsoftmax.train", ["--data-dir", tmp_path / "a", "--steps", "1"],
                       watch=[tmp_path])  # fmt: skip
    one_line_refusal(done, "cannot be resolved")
    assert done["status"] == 2, done


# --- settings the models could not hold as given ---------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--learning-rates", "1e-46"], "learning rate 1e-46 is 0 in float32"),
        (["--learning-rates", "1e39"], "learning rate 1e+39 is inf in float32"),
        (["--grid", "momentum=0.999999999"], "momentum 0.999999999 is 1 in float32"),
        (["--grid", "weight_decay=1e-45"], "weight decay 1e-45 is 1.4013e-45 in float32"),
    ],
    ids=["lr-underflows", "lr-overflows", "momentum-rounds-to-1", "decay-subnormal"],
)
def test_a_setting_float32_cannot_hold_is_refused(mnist_dir, tmp_path, argv, words):
    """--learning-rates 1e-46 passed the 'positive finite' check, and trained at 0."""
    import jaxsoftmax as js

    done = run_command("jaxsoftmax.train", [*argv, "--data-dir", mnist_dir, "--logdir",
                                             tmp_path / "run"], watch=[tmp_path])  # fmt: skip
    one_line_refusal(done, words)
    assert done["status"] == 2 and not (tmp_path / "run").exists(), done
    with pytest.raises(js.ConfigError, match="in float32"):
        js.SweepConfig(learning_rates=(1e-46,))


@pytest.mark.parametrize(
    "retyped",
    [lambda w: w.astype(np.complex64), lambda w: w.astype(np.int32),
     lambda w: np.zeros(w.shape, dtype=[("a", "f4"), ("b", "f4")]), lambda w: w.astype(str)],
    ids=["complex", "integer", "structured", "text"],
)  # fmt: skip
def test_weights_that_are_not_real_numbers_are_refused(logged_run, tmp_path, retyped):
    """Complex, integer or structured weights in a checkpoint were accepted."""
    logdir, name = edited_run(logged_run, tmp_path, lambda document: None)
    with np.load(logdir / "checkpoint.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["params_w"] = retyped(arrays["params_w"])
    np.savez(logdir / "checkpoint.npz", **arrays)
    (tmp_path / "x.npy").write_bytes(b"")
    done = run_command("jaxsoftmax.predict", [logdir, "--run", name, tmp_path / "x.npy"],
                       watch=[tmp_path])  # fmt: skip
    one_line_refusal(done, "params_w is", "not real numbers")
    assert done["status"] == 1 and done["out"] == "", done


def test_a_negative_learning_rate_in_a_stopped_runs_state_is_refused(small, tmp_path):
    """A resumed optimiser state with a negative learning rate trained on, uphill."""
    import jaxsoftmax as js
    from jaxsoftmax.sweep import warm

    logdir = tmp_path / "run"
    config = js.SweepConfig(steps=400, learning_rates=(0.5,), chunk_steps=100)
    assert js.train_logged(small, config, logdir, should_stop=lambda: True).interrupted
    with np.load(logdir / "checkpoint.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    leaf = f"state_{warm.hyperparameter_leaf(config.descent, 'learning_rate')}"
    arrays[leaf] = -arrays[leaf]
    np.savez(logdir / "checkpoint.npz", **arrays)
    with pytest.raises(js.CheckpointError, match="learning rates that are not positive"):
        js.train_logged(small, None, logdir, resume=True)
