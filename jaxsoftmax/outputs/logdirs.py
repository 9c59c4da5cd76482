"""Log directories: a new one per run, or a given one made ready without mixing two runs."""

import datetime
import json
import pathlib
import shutil

from jaxsoftmax import files
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.files import CHECKPOINT_FILE, FIGURES_DIR, RESULTS_FILE

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
    """Raises ConfigError if `path` cannot take a new run (it holds one and `overwrite`
    is False, or it is a file); changes nothing. Returns (old run folders, run files)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"`logdir` {path} exists and is not a folder")
    old_runs = sorted(path.glob("lr=*")) if path.is_dir() else []
    kept = [path / RESULTS_FILE, path / CHECKPOINT_FILE]
    if (any(file.exists() for file in kept) or old_runs) and not overwrite:
        go_on = f", or `resume` {path} to go on with it" if kept[1].exists() else ""
        raise ConfigError(
            f"`logdir` {path} already holds a run; choose another folder or pass `overwrite`{go_on}"
        )
    return old_runs, kept


def prepare_logdir(path: pathlib.Path, *, overwrite: bool) -> pathlib.Path:
    """Makes sure `path` can take a new run: refuses to mix two runs unless overwriting."""
    old_runs, kept = check_free(path, overwrite=overwrite)
    if any(file.exists() for file in kept) or old_runs:
        # Everything a run writes: its runs, root events, figures and results.json.
        for old in [*old_runs, path / FIGURES_DIR]:
            shutil.rmtree(old, ignore_errors=True)
        for old in [*path.glob("events.out.tfevents.*"), *kept]:
            old.unlink(missing_ok=True)
    files.make_folder(path, lambda why: ConfigError(f"`logdir` {path} is not writable ({why})"))
    check_writable(path)
    return path


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
