"""`python -m jaxsoftmax.report LOGDIR`: PNG figures of a training run, without TensorBoard.

Reads the run's TensorBoard events with TensorBoard's own EventAccumulator (nothing
subsampled) and draws with matplotlib's object-oriented API (no pyplot, no display):

- `loss.png`: train and test loss against step, one line per learning rate;
- `accuracy.png`: the same for accuracy;
- `weights.png`: each learning rate's weight templates at its last logged step, when the run
  logged them (image `weights` in `LOGDIR/lr=<value>/train`);
- `accuracy_vs_learning_rate.png`: final test accuracy against learning rate.

matplotlib is optional: `pip install 'jaxsoftmax[plot]'`. User mistakes end with one line on
stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import pathlib
import sys
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from jaxsoftmax import cmdline
from jaxsoftmax.errors import DataError, JaxsoftmaxError
from jaxsoftmax.logdirs import FIGURES_DIR

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
# The noisy per-minibatch training curves are drawn faint, under a moving average over about
# 1% of their points (10 steps of 1000), which shows their trend without lagging behind it.
SMOOTHING_FRACTION = 0.01
RAW_ALPHA = 0.15
# Every size-limited kind of event is read in full (0) or not kept beyond the latest (1).
_SIZE_GUIDANCE = {
    "scalars": 0,
    "images": 0,
    "histograms": 1,
    "compressedHistograms": 1,
    "audio": 1,
    "tensors": 1,
}
_EVENTS_GLOB = "events.out.tfevents.*"
# PNG text chunks would otherwise name the matplotlib version; without them a re-run writes
# the same bytes, so committed figures only change when the run does.
_PNG_METADATA = {"Software": None}


@dataclasses.dataclass(frozen=True)
class Curve:
    """One scalar over training.

    Attributes:
      steps: (points,) int, the steps it was logged at, increasing.
      values: (points,) float, its value at each step.
    """

    steps: np.ndarray
    values: np.ndarray


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunLog:
    """What one learning rate's TensorBoard runs hold.

    Attributes:
      label: the run's name after `lr=`: the learning rate as the user wrote it, e.g.
        `0.005`, then any other varying hyperparameter (`0.005,seed=2`).
      learning_rate: the same as a number.
      train_loss, train_accuracy: every training step's minibatch loss and accuracy.
      test_loss, test_accuracy: every evaluation on the full test set.
      weights_image: (height, width, 3) uint8, the weight templates at `weights_step`, the last
        step they were logged at; None when the run logged none.
      weights_step: that step, or None.
    """

    label: str
    learning_rate: float
    train_loss: Curve
    train_accuracy: Curve
    test_loss: Curve
    test_accuracy: Curve
    weights_image: np.ndarray | None = None
    weights_step: int | None = None


# --- Reading events -------------------------------------------------------------------------


def _has_events(folder: pathlib.Path) -> bool:
    return folder.is_dir() and any(folder.glob(_EVENTS_GLOB))


def _accumulate(folder: pathlib.Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance=_SIZE_GUIDANCE)
    events.Reload()
    return events


def _curve(events, folder: pathlib.Path, tag: str) -> Curve:
    if tag not in events.Tags()["scalars"]:
        raise DataError(f"{folder} has no {tag!r} scalars")
    scalars = sorted(events.Scalars(tag), key=lambda event: event.step)
    return Curve(
        steps=np.array([event.step for event in scalars], dtype=np.int64),
        values=np.array([event.value for event in scalars], dtype=np.float64),
    )


def _last_image(folder: pathlib.Path, tag: str) -> tuple[np.ndarray, int] | None:
    """The image `tag` at its last step in `folder`'s events, decoded to RGB; None if absent."""
    if not _has_events(folder):
        return None
    events = _accumulate(folder)
    if tag not in events.Tags()["images"]:
        return None
    last = max(events.Images(tag), key=lambda event: event.step)
    from PIL import Image  # pillow is a dependency of matplotlib

    with Image.open(io.BytesIO(last.encoded_image_string)) as image:
        return np.asarray(image.convert("RGB")), last.step


def run_folders(logdir: str | pathlib.Path) -> list[pathlib.Path]:
    """The `lr=<value>` folders of a log directory that hold training events, by learning rate.

    Raises:
      DataError: when there is none (or `logdir` does not exist).
    """
    logdir = pathlib.Path(logdir)
    folders = [path for path in logdir.glob("lr=*") if _has_events(path / "train")]
    if not folders:
        raise DataError(
            f"{logdir} holds no jaxsoftmax run (no lr=*/train events); train one with "
            f"python -m jaxsoftmax.train --logdir {logdir}"
        )
    for folder in folders:
        try:
            float(folder.name.removeprefix("lr="))
        except ValueError:
            raise DataError(f"{folder} is not named lr=<learning rate>") from None
    return sorted(folders, key=lambda path: float(path.name.removeprefix("lr=")))


def load_runs(logdir: str | pathlib.Path) -> list[RunLog]:
    """Every learning rate's curves (and weight templates, when logged), by learning rate.

    Raises:
      DataError: when `logdir` holds no run, or a run lacks its test events or a scalar.
    """
    runs = []
    for folder in run_folders(logdir):
        splits = {}
        for split in ("train", "test"):
            if not _has_events(folder / split):
                raise DataError(f"{folder / split} holds no events")
            events = _accumulate(folder / split)
            splits[split] = {
                tag: _curve(events, folder / split, tag) for tag in ("loss", "accuracy")
            }
        weights = _last_image(folder / "train", "weights")
        label = folder.name.removeprefix("lr=")
        runs.append(
            RunLog(
                label=label,
                # A grid's runs go on, e.g. `lr=0.005,seed=2`: the rate comes first.
                learning_rate=float(label.split(",")[0]),
                train_loss=splits["train"]["loss"],
                train_accuracy=splits["train"]["accuracy"],
                test_loss=splits["test"]["loss"],
                test_accuracy=splits["test"]["accuracy"],
                weights_image=None if weights is None else weights[0],
                weights_step=None if weights is None else weights[1],
            )
        )
    return runs


# --- Drawing --------------------------------------------------------------------------------


def smoothing_weight(points: int, fraction: float = SMOOTHING_FRACTION) -> float:
    """The moving-average weight that averages over about `fraction` of `points` (0: none)."""
    window = max(1.0, points * fraction)
    return 1 - 1 / window


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average.

    Args:
      values: (points,) the raw series.
      weight: how much of the running average each point keeps, in [0, 1).

    Returns:
      (points,) float: point i is the average of values[:i + 1] weighted by weight**(i - j).
    """
    smoothed = np.empty(len(values), dtype=np.float64)
    running = 0.0
    for index, value in enumerate(np.asarray(values, dtype=np.float64)):
        running = weight * running + (1 - weight) * value
        smoothed[index] = running / (1 - weight ** (index + 1))
    return smoothed


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise JaxsoftmaxError(
            "the figures need matplotlib: pip install 'jaxsoftmax[plot]'"
        ) from None


def _color(index: int) -> str:
    return f"C{index % 10}"


def _curves_figure(runs: Sequence[RunLog], metric: str) -> Figure:
    """Two panels, train and test, one line per learning rate; long training curves smoothed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=DPI, layout="constrained")
    train_axes, test_axes = figure.subplots(1, 2, sharey=True)
    smoothed_any = False
    for index, run in enumerate(runs):
        train, test = getattr(run, f"train_{metric}"), getattr(run, f"test_{metric}")
        weight = smoothing_weight(len(train.values))
        if weight > 0:
            smoothed_any = True
            # Raw values under every smoothed line, so no run's noise hides another's trend.
            train_axes.plot(
                train.steps,
                train.values,
                color=_color(index),
                alpha=RAW_ALPHA,
                linewidth=0.6,
                zorder=1,
                label=f"_{run.label} raw",
            )
        train_axes.plot(
            train.steps,
            smooth(train.values, weight),
            color=_color(index),
            zorder=2,
            label=run.label,
        )
        test_axes.plot(test.steps, test.values, color=_color(index), label=run.label)
    smoothing = ": moving average, raw faint" if smoothed_any else ""
    train_axes.set_title(f"train {metric} (minibatch{smoothing})")
    test_axes.set_title(f"test {metric} (full test set)")
    train_axes.set_ylabel(metric)
    for axes in (train_axes, test_axes):
        axes.set_xlabel("step")
        axes.grid(True, which="both", alpha=0.3)
    test_axes.legend(title="learning rate")
    return figure


def loss_figure(runs: Sequence[RunLog]) -> Figure:
    """Train and test loss against step, log scale: it falls tenfold, mostly early on."""
    figure = _curves_figure(runs, "loss")
    figure.axes[0].set_yscale("log")
    return figure


def accuracy_floor(runs: Sequence[RunLog]) -> float:
    """The bottom of the accuracy axis: 0.8, or lower if a final test accuracy is below 0.9."""
    lowest_final = min(run.test_accuracy.values[-1] for run in runs)
    return max(0.0, min(0.8, math.floor((lowest_final - 0.1) * 20) / 20))


def accuracy_figure(runs: Sequence[RunLog]) -> Figure:
    """Train and test accuracy against step, zoomed on the top so the curves are apart."""
    from matplotlib.ticker import PercentFormatter

    figure = _curves_figure(runs, "accuracy")
    figure.axes[0].set_ylim(accuracy_floor(runs), 1.0)
    figure.axes[0].yaxis.set_major_formatter(PercentFormatter(xmax=1))
    return figure


def weights_figure(runs: Sequence[RunLog]) -> Figure | None:
    """One row per learning rate with its weight templates; None when none were logged."""
    from matplotlib.figure import Figure

    logged = [run for run in runs if run.weights_image is not None]
    if not logged:
        return None
    height, width = logged[0].weights_image.shape[:2]
    row_inches = 10 * height / width
    figure = Figure(
        figsize=(10, len(logged) * (row_inches + 0.35) + 0.4), dpi=DPI, layout="constrained"
    )
    figure.suptitle(
        "weight templates, one per class, left to right: blue votes for the class, red against"
        " (each row scaled to its largest weight)",
        fontsize=11,
    )
    for axes, run in zip(figure.subplots(len(logged), 1, squeeze=False)[:, 0], logged, strict=True):
        axes.imshow(run.weights_image)
        axes.set_title(f"learning rate {run.label}, step {run.weights_step}", fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
    return figure


def accuracy_vs_learning_rate_figure(runs: Sequence[RunLog]) -> Figure:
    """Final test accuracy against learning rate (log x), each point labelled."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator, PercentFormatter

    figure = Figure(figsize=(6, 4), dpi=DPI, layout="constrained")
    axes = figure.subplots()
    rates = [run.learning_rate for run in runs]
    finals = [run.test_accuracy.values[-1] for run in runs]
    axes.plot(rates, finals, color="0.6", zorder=1)
    for index, (rate, final) in enumerate(zip(rates, finals, strict=True)):
        axes.scatter([rate], [final], color=_color(index), zorder=2)
        axes.annotate(
            f"{final:.2%}",
            (rate, final),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=9,
        )
    axes.set_xscale("log")
    axes.set_xticks(rates, [run.label for run in runs])
    axes.xaxis.set_minor_locator(NullLocator())
    if len(rates) > 1:
        margin = (max(rates) / min(rates)) ** 0.08
        axes.set_xlim(min(rates) / margin, max(rates) * margin)
    axes.margins(y=0.25)
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=2))
    axes.set_xlabel("learning rate")
    axes.set_ylabel("test accuracy")
    steps = sorted({int(run.test_accuracy.steps[-1]) for run in runs})
    axes.set_title(f"final test accuracy (step {', '.join(map(str, steps))})")
    axes.grid(True, alpha=0.3)
    return figure


# --- Writing --------------------------------------------------------------------------------


def write_figures(
    logdir: str | pathlib.Path,
    out_dir: str | pathlib.Path | None = None,
    *,
    report: Callable[[str], None] | None = None,
) -> list[pathlib.Path]:
    """Draws a run's figures as PNG files.

    Args:
      logdir: the folder `python -m jaxsoftmax.train --logdir` wrote.
      out_dir: where the PNGs go; default `logdir/figures`, created if needed.
      report: called with a note for each figure skipped (weights that were not logged).

    Returns:
      The paths written: loss.png, accuracy.png, weights.png (when logged) and
      accuracy_vs_learning_rate.png.

    Raises:
      DataError: `logdir` holds no run or a run lacks a scalar.
      JaxsoftmaxError: matplotlib is not installed, or `out_dir` cannot be written.
    """
    _require_matplotlib()
    logdir = pathlib.Path(logdir)
    out_dir = logdir / FIGURES_DIR if out_dir is None else pathlib.Path(out_dir)
    runs = load_runs(logdir)
    figures = {
        "loss.png": loss_figure(runs),
        "accuracy.png": accuracy_figure(runs),
        "weights.png": weights_figure(runs),
        "accuracy_vs_learning_rate.png": accuracy_vs_learning_rate_figure(runs),
    }
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, figure in figures.items():
            if figure is not None:
                figure.savefig(out_dir / name, dpi=DPI, metadata=_PNG_METADATA)
                written.append(out_dir / name)
    except OSError as error:
        raise JaxsoftmaxError(
            f"cannot write figures to {out_dir} ({error.strerror or error})"
        ) from None
    missing = [run.label for run in runs if run.weights_image is None]
    if missing and report is not None:
        skipped = "skipped" if len(missing) == len(runs) else "drawn without them"
        report(
            f"note: no 'weights' image in {', '.join(f'lr={label}' for label in missing)}; "
            f"weights.png {skipped}"
        )
    return written


# --- Command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: a log directory and where the figures go."""
    parser = cmdline.OneLineParser(
        prog="python -m jaxsoftmax.report",
        description=(
            "Draw a training run's TensorBoard events as PNG figures with matplotlib: loss and "
            "accuracy curves, weight templates, final accuracy against learning rate."
        ),
    )
    parser.add_argument("logdir", type=pathlib.Path,
                        help="a folder written by python -m jaxsoftmax.train --logdir")  # fmt: skip
    parser.add_argument("--out", type=pathlib.Path, metavar="DIR",
                        help=f"where the PNG files go (default: LOGDIR/{FIGURES_DIR})")  # fmt: skip
    return parser


def _read_events_without_tensorflow() -> None:
    """Lets TensorBoard read event files with its own stub instead of importing TensorFlow.

    Where TensorFlow is installed (the tfds extra), TensorBoard imports it just to open files:
    seconds of start-up and log lines on stderr. `tensorboard.compat.notf` is TensorBoard's
    switch for builds without TensorFlow; its stub reads local event files the same way. Only
    the command line flips it, as it owns its process; the library leaves the choice alone.
    """
    if "tensorflow" not in sys.modules:
        name = "tensorboard.compat.notf"
        sys.modules.setdefault(name, types.ModuleType(name))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; prints each figure's path; returns the exit status."""
    args = build_parser().parse_args(argv)
    _read_events_without_tensorflow()

    def draw() -> int:
        paths = write_figures(
            args.logdir, args.out, report=lambda note: print(note, file=sys.stderr)
        )
        for path in paths:
            print(path)
        return 0

    return cmdline.run_command(draw)


if __name__ == "__main__":
    sys.exit(main())
