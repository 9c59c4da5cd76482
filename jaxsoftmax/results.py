"""results.json and the table printed at the end of a run."""

import json
import os
import pathlib
import tempfile

from jaxsoftmax.sweep import SweepResult

RESULTS_FILE = "results.json"


def results_document(result: SweepResult, *, dataset: str, timing: dict[str, float]) -> dict:
    """The machine-readable record of a run: its config, one entry per model, the times."""
    return {
        "config": result.config.to_dict() | {"dataset": dataset},
        "runs": result.runs(),
        "timing": {name: round(seconds, 4) for name, seconds in timing.items()},
    }


def write_json_atomically(path: str | os.PathLike, document: dict) -> None:
    """Writes JSON to a temporary file beside `path`, then renames it into place.

    A reader sees the old file or the whole new one, never half of it.
    """
    path = pathlib.Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def format_table(result: SweepResult) -> str:
    """One line per learning rate: final train loss, test loss and test accuracy."""
    header = f"{'learning rate':>13}  {'train loss':>10}  {'test loss':>9}  {'test accuracy':>13}"
    lines = [header, "-" * len(header)]
    for run in result.runs():
        lines.append(
            f"{run['learning_rate']:>13g}  {run['train_loss']:>10.3f}  {run['test_loss']:>9.3f}"
            f"  {run['test_accuracy']:>12.2%}"
        )
    return "\n".join(lines)


def format_timing(timing: dict[str, float]) -> str:
    """`load 0.31 s, compile 1.20 s, ...` for the seconds each phase took."""
    return ", ".join(f"{name.removesuffix('_s')} {secs:.2f} s" for name, secs in timing.items())
