"""Log directories: a new one per run, or a given one made ready without mixing two runs."""

import contextlib
import datetime
import json
import os
import pathlib
import shutil

from jaxsoftmax import files
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.files import CHECKPOINT_FILE, FIGURE_FILES, FIGURES_DIR, LOCK_FILE, RESULTS_FILE

DEFAULT_ROOT = pathlib.Path("runs") / "softmax"


def new_logdir(root: pathlib.Path = DEFAULT_ROOT) -> pathlib.Path:
    """Creates and returns a fresh `root/<date-time>` folder; never one that exists."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as error:
            raise ConfigError(
                f"cannot create a log directory under {root} ({error.strerror or error}); "
                "pass `logdir`=DIR"
            ) from None
    raise ConfigError(f"cannot create a new log directory under {root}")


def check_free(path: pathlib.Path, *, overwrite: bool):
    """Raises ConfigError if `path` cannot take a new run: it is a file, or holds a run
    (without `overwrite`; with it, a results.json that is not a run's: overwrite replaces
    only what a run of ours wrote). Changes nothing. Returns (old run folders, run files)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"`logdir` {path} exists and is not a folder")
    old_runs = sorted(folder for folder in path.glob("lr=*") if _only_events(folder))
    kept = [path / RESULTS_FILE, path / CHECKPOINT_FILE]
    if overwrite and kept[0].exists() and not _is_ours(kept[0]):
        raise ConfigError(
            f"`logdir` {path} holds a {RESULTS_FILE} that is not a jaxsoftmax run's; "
            "choose another folder (overwrite replaces only a run of ours)"
        )
    if (any(file.exists() for file in kept) or old_runs) and not overwrite:
        go_on = f", or `resume` {path} to go on with it" if kept[1].exists() else ""
        raise ConfigError(
            f"`logdir` {path} already holds a run; choose another folder or pass `overwrite`{go_on}"
        )
    return old_runs, kept


def prepare_logdir(path: pathlib.Path, *, overwrite: bool) -> pathlib.Path:
    """Makes `path` ready for a new run, claimed by this process (`claim`) before
    anything in it is changed; refuses to mix two runs unless overwriting, and then
    removes only what a run wrote (its run folders of event files, root events, figures,
    results.json and checkpoint)."""
    files.make_folder(path, lambda why: ConfigError(f"`logdir` {path} is not writable ({why})"))
    claim(path)
    old_runs, kept = check_free(path, overwrite=overwrite)
    if any(file.exists() for file in kept) or old_runs:
        for old in old_runs:
            shutil.rmtree(old, ignore_errors=True)
        figures = path / FIGURES_DIR
        for old in [*path.glob("events.out.tfevents.*"), *kept,
                    *(figures / name for name in FIGURE_FILES)]:  # fmt: skip
            old.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            figures.rmdir()  # where nothing of the user's is left in it
    check_writable(path)
    return path


_CLAIMED: dict[pathlib.Path, int] = {}  # folder: the descriptor holding its lock


def claim(path: pathlib.Path) -> None:
    """Takes the log directory `path` for this process for as long as it lives (an
    exclusive flock on its LOCK_FILE, let go by the system when the process ends, even
    killed), so that a second run started into it is refused instead of mixing its
    files with this one's. Only the main process of a multi-process run claims."""
    from jaxsoftmax.sweep import parallel

    key = path.resolve()
    if key in _CLAIMED or not parallel.is_main_process():
        return
    try:
        import fcntl
    except ImportError:  # not a Unix: no claim
        return
    try:
        descriptor = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ConfigError(f"`logdir` {path} is not writable ({error.strerror or error})") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise ConfigError(
            f"`logdir` {path} is being written by another run; wait for it to end or "
            "choose another folder"
        ) from None
    _CLAIMED[key] = descriptor


def release(path: pathlib.Path | None = None) -> None:
    """Lets go of this process's claim on `path` (None: on every folder it claimed)."""
    for key in [path.resolve()] if path is not None else list(_CLAIMED):
        descriptor = _CLAIMED.pop(key, None)
        if descriptor is not None:
            os.close(descriptor)  # closing the descriptor drops its flock


def _is_ours(results: pathlib.Path) -> bool:
    """Whether a results.json was written by a run of ours (a JSON object with its
    `config` and `runs`); an unreadable one is not."""
    try:
        document = json.loads(results.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and {"config", "runs"} <= set(document)


def _only_events(folder: pathlib.Path) -> bool:
    """Whether `folder` holds TensorBoard event files and folders of them alone (what a
    run of ours writes there), and is a folder."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    return all(
        (item.is_dir() and not item.is_symlink()) or item.name.startswith("events.out.tfevents.")
        for item in folder.rglob("*")
    )


def check_writable(path: pathlib.Path) -> None:
    """Raises ConfigError unless a file can be created in the folder `path`."""
    try:
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"{path} is not writable ({error.strerror or error})") from None


def holds_finished_run(logdir: pathlib.Path) -> bool:
    """Whether `logdir` holds the results.json of a run that was not interrupted."""
    try:
        document = json.loads((logdir / RESULTS_FILE).read_text())
        return document.get("interrupted") is False
    except (OSError, ValueError, AttributeError):
        return False
