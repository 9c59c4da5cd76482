"""What a sweep produced: `SweepResult`, results.json, and the table printed at the end."""

import dataclasses
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from jaxsoftmax import files
from jaxsoftmax.files import RESULTS_FILE
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import SweepConfig

TABLE_ROWS = 30


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SweepResult:
    """What a sweep produced, as NumPy arrays; K models, in the order of `config.points`.

    Attributes:
      config: the run's settings.
      params: trained parameters, `w` of shape (K, features, classes), `b` (K, classes);
        None if `train_sweep` was told not to keep them.
      train_loss: (steps, K), the objective on each step's batch, before that step.
      train_accuracy: (steps, K).
      eval_steps: (E,), the step after which each evaluation ran.
      test_loss: (E, K), the objective on the full test set (NaN if not evaluated).
      test_accuracy: (E, K).
      validation_loss, validation_accuracy: (E, K) on the validation split, where the
        config holds one out (else None).
      compile_s: seconds spent compiling.
      train_s: seconds spent training and evaluating, compilation excluded.
      steps_done: (K,) the steps each model took: all of them unless `interrupted`.
        Metrics of steps not taken are NaN.
      diverged_at: (K,) the step each model diverged at (see `divergence`), 0 if it
        did not.
      interrupted: training stopped early, when asked to.
    """

    config: SweepConfig
    params: dict[str, np.ndarray] | None
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    eval_steps: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    compile_s: float
    train_s: float
    steps_done: np.ndarray | None = None
    diverged_at: np.ndarray | None = None
    interrupted: bool = False
    validation_loss: np.ndarray | None = None
    validation_accuracy: np.ndarray | None = None

    def __post_init__(self):
        num_models = self.config.num_models
        if self.steps_done is None:
            object.__setattr__(self, "steps_done", np.full(num_models, self.config.steps))
        if self.diverged_at is None:
            object.__setattr__(self, "diverged_at", np.zeros(num_models, np.int64))

    def runs(self) -> list[dict]:
        """One summary per model: its hyperparameters (under their grid names), its
        final train loss, test loss and test accuracy (None where not finite, reached
        or evaluated), and validation accuracy and loss where there is a validation
        split, the steps it took and whether it diverged (and at which step)."""
        runs = []
        held_out = self.config.validation and self.validation_accuracy is not None
        for k, point in enumerate(self.config.points):
            done = int(self.steps_done[k])
            evaluated = np.flatnonzero(self.eval_steps <= done)
            last = evaluated[-1] if evaluated.size else None
            run = dict(point)
            if held_out:
                run["validation_accuracy"] = _final_value(self.validation_accuracy, last, k)
                run["validation_loss"] = _final_value(self.validation_loss, last, k)
            run |= {
                "test_accuracy": _final_value(self.test_accuracy, last, k),
                "test_loss": _final_value(self.test_loss, last, k),
                "train_loss": _final_value(self.train_loss, done - 1 if done else None, k),
                "steps": done,
                "diverged": bool(self.diverged_at[k]),
            }
            if self.diverged_at[k]:
                run["diverged_at_step"] = int(self.diverged_at[k])
            runs.append(run)
        return runs

    def finals(self, metric: str) -> np.ndarray:
        """(K,) each model's `metric` (a name of `LARGER_IS_BETTER`) at the last
        evaluation (train_loss: the last step); NaN where not reached or evaluated."""
        values = getattr(self, metric) if metric in LARGER_IS_BETTER else None
        if values is None:
            return np.full(self.config.num_models, np.nan)
        return values[-1]

    def ranked(self, metric: str = "validation_accuracy") -> np.ndarray:
        """The healthy models by final `metric`, best first (see `rank_models`)."""
        finite = None
        if self.params is not None:
            finite = np.isfinite(self.params["w"]).all(axis=(1, 2)) & np.isfinite(
                self.params["b"]
            ).all(axis=1)
        return rank_models(
            self.finals(metric), finished=self.steps_done == self.config.steps,
            diverged=self.diverged_at != 0, params_finite=finite,
            larger=LARGER_IS_BETTER.get(metric, True),
        )  # fmt: skip

    def best(self, metric: str = "validation_accuracy") -> int | None:
        """The best healthy model by final `metric` (None if no model is healthy)."""
        ranked = self.ranked(metric)
        return int(ranked[0]) if ranked.size else None

    def table(self, names: Sequence[str] | None = None) -> str:
        """The printed summary: each model's final metrics and, with several seeds, test
        accuracy over seeds per setting (see `format_table`)."""
        return format_table(self, names)

    def seed_summary(self) -> list[dict]:
        """Final test accuracy over seeds, for each setting of the other axes.

        Returns one dict per setting: `learning_rate`, `weight_decay`, `momentum`,
        `seeds` (how many), `test_accuracy_mean` and `test_accuracy_std` (the
        sample standard deviation, ddof=1; 0 for a single seed).
        """
        num_seeds = len(self.config.seed_values)
        final = self.test_accuracy[-1].reshape(num_seeds, -1)
        spread = final.std(axis=0, ddof=1) if num_seeds > 1 else np.zeros(final.shape[1])
        return [
            setting
            | {
                "seeds": num_seeds,
                "test_accuracy_mean": float32_value(final[:, index].mean()),
                "test_accuracy_std": float32_value(spread[index]),
            }
            for index, setting in enumerate(self.config.settings)
        ]


# The final metrics a model can be ranked by, and whether larger is better.
LARGER_IS_BETTER = {
    "validation_accuracy": True,
    "test_accuracy": True,
    "validation_loss": False,
    "test_loss": False,
    "train_loss": False,  # the last step's minibatch
}


def rank_models(
    finals: np.ndarray,
    *,
    finished: np.ndarray,
    diverged: np.ndarray,
    params_finite: np.ndarray | None = None,
    larger: bool = True,
) -> np.ndarray:
    """The one rule for which models count and which is best, wherever a model is chosen
    or shown: a model is healthy if it took every step, did not diverge, has a finite
    final metric and (where kept) finite parameters. Choose on validation; a ranking by
    test metrics is for display only.

    Returns:
      The healthy models' indices, best final metric first; ties: lower index first.
    """
    finals = np.asarray(finals, np.float64)
    healthy = np.asarray(finished, bool) & ~np.asarray(diverged, bool) & np.isfinite(finals)
    if params_finite is not None:
        healthy &= params_finite
    index = np.flatnonzero(healthy)
    return index[np.argsort(-finals[index] if larger else finals[index], kind="stable")]


def float32_value(value) -> float:
    """A float32 as the Python float it means: the digits float32 carries (7), without the
    noise of its binary expansion (0.9146, not 0.9145999550819397)."""
    return float(f"{float(value):.7g}")


def float32_or_none(value) -> float | None:
    """`float32_value`, or None (JSON's null) for NaN and infinities."""
    value = float32_value(value)
    return value if math.isfinite(value) else None


def _final_value(values: np.ndarray, row: int | None, column: int) -> float | None:
    """values[row, column] as a float, or None if there is no such row or it is not finite."""
    return None if row is None else float32_or_none(values[row, column])


def results_document(
    result: SweepResult,
    *,
    dataset: str,
    timing: dict[str, float],
    names: Sequence[str] | None = None,
    data: dict | None = None,
    analyses: dict[int, dict] | None = None,
) -> dict:
    """The machine-readable record of a run: its config, whether it was `interrupted`,
    what a model needs of its data (`data`: image shape, class names, background), one
    entry per model (with its TensorBoard run name, if `names` are given, and its
    analysis, if `analyses` has one for it: confusion matrix and accuracy per class),
    the summary over seeds when there are several, and the times. Values that are not
    finite numbers (a diverged model's loss, say) are written as null."""
    runs = result.runs()
    if names is not None:
        runs = [{"name": name} | run for name, run in zip(names, runs, strict=True)]
    for index, analysis in (analyses or {}).items():
        runs[index] |= analysis
    document = {
        "config": result.config.to_dict() | {"dataset": dataset},
        "data": data,
        "interrupted": result.interrupted,
        "runs": runs,
    }
    if data is None:
        del document["data"]
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
    """The final train loss, validation accuracy (where there is a validation split),
    test loss and test accuracy of each model, and, with several seeds, test accuracy
    over seeds (mean ± sample standard deviation) per setting.

    Models are listed in sweep order; more than TABLE_ROWS are cut to the best
    TABLE_ROWS healthy models (see `rank_models`), best first, by validation accuracy, or
    without a validation split by test accuracy (results.json has them all). A model
    that diverged says at which step, one that was stopped early how far it got; a
    missing or non-finite value shows as `-`.
    """
    runs = result.runs()
    names = list(names) if names is not None else grid.run_names(result.config)
    ranked_by = "validation_accuracy" if "validation_accuracy" in runs[0] else "test_accuracy"
    rows = list(range(len(runs)))
    note = ""
    if len(rows) > TABLE_ROWS:  # the healthy by rank, then the others in sweep order
        ranked = result.ranked(ranked_by).tolist()
        rows = (ranked + sorted(set(rows) - set(ranked)))[:TABLE_ROWS]
        by = ranked_by.replace("_", " ")
        note = f"(the best {TABLE_ROWS} of {len(runs)} models by {by}; all are in {RESULTS_FILE})"
    columns = [("train loss", "train_loss", ".3f")]
    if ranked_by == "validation_accuracy":
        columns.append(("validation accuracy", "validation_accuracy", ".2%"))
    columns += [("test loss", "test_loss", ".3f"), ("test accuracy", "test_accuracy", ".2%")]
    width = max(len("run"), *(len(names[k]) for k in rows))
    header = f"{'run':<{width}}" + "".join(f"  {title:>{len(title)}}" for title, _, _ in columns)
    lines = [header, "-" * len(header)]
    for k in rows:
        run = runs[k]
        remark = ""
        if run["diverged"]:
            remark = f"  diverged at step {run['diverged_at_step']}"
        elif run["steps"] < result.config.steps:
            remark = f"  stopped after {run['steps']} of {result.config.steps} steps"
        cells = "".join(f"  {_cell(run[key], spec, len(title))}" for title, key, spec in columns)
        lines.append(f"{names[k]:<{width}}{cells}{remark}")
    if note:
        lines.append(note)
    if len(result.config.seed_values) > 1:
        lines += ["", *format_seed_summary(result)]
    return "\n".join(lines)


def _cell(value: float | None, spec: str, width: int) -> str:
    """`value` right-aligned in `width` characters: in `spec` where it fits, else in
    scientific notation (a diverged model's loss of 2e9, say); `-` if missing."""
    if value is None or not math.isfinite(value):
        text = "-"
    else:
        text = format(value, spec)
        for digits in (3, 2, 1, 0):
            if len(text) <= width:
                break
            text = f"{value:.{digits}e}"
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
