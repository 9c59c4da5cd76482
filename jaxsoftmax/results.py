"""results.json and the table printed at the end of a run."""

import json
import math
import os
from collections.abc import Sequence

import numpy as np

from jaxsoftmax import files
from jaxsoftmax.sweep import SweepResult

RESULTS_FILE = "results.json"
TABLE_ROWS = 30


def results_document(
    result: SweepResult,
    *,
    dataset: str,
    timing: dict[str, float],
    names: Sequence[str] | None = None,
) -> dict:
    """The machine-readable record of a run: its config, whether it was `interrupted`,
    one entry per model (with its TensorBoard run name, if `names` are given), the
    summary over seeds when there are several, and the times. Values that are not
    finite numbers (a diverged model's loss, say) are written as null."""
    runs = result.runs()
    if names is not None:
        runs = [{"name": name} | run for name, run in zip(names, runs, strict=True)]
    document = {
        "config": result.config.to_dict() | {"dataset": dataset},
        "interrupted": result.interrupted,
        "runs": runs,
    }
    if len(result.config.seed_values) > 1:
        document["seed_summary"] = [
            {key: _finite_or_none(value) for key, value in row.items()}
            for row in result.seed_summary()
        ]
    return document | {"timing": {name: round(secs, 4) for name, secs in timing.items()}}


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomically(path: str | os.PathLike, document: dict) -> None:
    """Writes JSON so that a reader sees the old file or the whole new one, never half."""
    with files.atomic_writer(path, mode="w") as handle:
        json.dump(document, handle, indent=2, allow_nan=False)
        handle.write("\n")


def format_table(result: SweepResult, names: Sequence[str] | None = None) -> str:
    """The final train loss, test loss and test accuracy of each model, and, with several
    seeds, test accuracy over seeds (mean ± sample standard deviation) per setting.

    Models are listed in sweep order; more than TABLE_ROWS are cut to the best
    TABLE_ROWS by test accuracy (results.json has them all). A model that diverged
    says at which step, one that was stopped early how far it got; a missing or
    non-finite value shows as `-`.
    """
    runs = result.runs()
    names = list(names) if names is not None else result.config.run_names()
    rows = list(range(len(runs)))
    note = ""
    if len(rows) > TABLE_ROWS:
        rows = sorted(rows, key=lambda k: -(runs[k]["test_accuracy"] or -1.0))[:TABLE_ROWS]
        note = f"(the best {TABLE_ROWS} of {len(runs)} models; all are in {RESULTS_FILE})"
    width = max(len("run"), *(len(names[k]) for k in rows))
    header = f"{'run':<{width}}  {'train loss':>10}  {'test loss':>9}  {'test accuracy':>13}"
    lines = [header, "-" * len(header)]
    for k in rows:
        run = runs[k]
        remark = ""
        if run["diverged"]:
            remark = f"  diverged at step {run['diverged_at_step']}"
        elif run["steps"] < result.config.steps:
            remark = f"  stopped after {run['steps']} of {result.config.steps} steps"
        lines.append(
            f"{names[k]:<{width}}  {_cell(run['train_loss'], '.3f', 10)}"
            f"  {_cell(run['test_loss'], '.3f', 9)}  {_cell(run['test_accuracy'], '.2%', 13)}"
            + remark
        )
    if note:
        lines.append(note)
    if len(result.config.seed_values) > 1:
        lines += ["", *format_seed_summary(result)]
    return "\n".join(lines)


def _cell(value: float | None, spec: str, width: int) -> str:
    text = "-" if value is None or not math.isfinite(value) else format(value, spec)
    return f"{text:>{width}}"


def format_seed_summary(result: SweepResult) -> list[str]:
    """Test accuracy over seeds for each setting of the other axes, best first."""
    summary = sorted(
        result.seed_summary(),
        key=lambda row: -np.nan_to_num(row["test_accuracy_mean"], nan=-1.0),
    )
    shown = summary[:TABLE_ROWS]
    axes = ("learning_rate", "weight_decay", "momentum")
    header = (
        f"{'learning_rate':>13}  {'weight_decay':>12}  {'momentum':>8}  "
        f"test accuracy over {summary[0]['seeds']} seeds"
    )
    lines = [header, "-" * len(header)]
    for row in shown:
        values = "  ".join(
            f"{row[axis]:>{width}g}" for axis, width in zip(axes, (13, 12, 8), strict=True)
        )
        mean, spread = row["test_accuracy_mean"], row["test_accuracy_std"]
        if math.isfinite(mean):
            lines.append(f"{values}  {mean:.2%} ± {spread:.2%}")
        else:
            lines.append(f"{values}  - (a seed diverged or did not finish)")
    if len(summary) > len(shown):
        lines.append(f"(the best {len(shown)} of {len(summary)} settings)")
    return lines


def format_timing(timing: dict[str, float]) -> str:
    """`load 0.31 s, compile 1.20 s, ...` for the seconds each phase took."""
    return ", ".join(f"{name.removesuffix('_s')} {secs:.2f} s" for name, secs in timing.items())
