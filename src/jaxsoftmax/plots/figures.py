"""The report's figures, drawn with matplotlib's object-oriented API (no pyplot, no display).

Each function takes settings (`runlogs.Setting`: a setting's runs over seeds) and returns a
`Figure`, or None when there is nothing to draw; `report.write_figures` saves them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from jaxsoftmax.outputs import runlogs
from jaxsoftmax.outputs.runlogs import SHOWN, RunLog, Setting

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
# The noisy per-minibatch training curves are drawn faint, under a moving average over about
# 1% of their points (10 steps of 1000), which shows their trend without lagging behind it.
SMOOTHING_FRACTION = 0.01
RAW_ALPHA = 0.15
BAND_ALPHA = 0.2
CONFUSIONS = 3  # confusion matrices drawn at most
# PNG text chunks would otherwise name the matplotlib version; without them a re-run writes
# the same bytes, so committed figures only change when the run does.
PNG_METADATA = {"Software": None}


# --- Curves ---------------------------------------------------------------------------------


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


def seed_curve(runs: Sequence[RunLog], tag: str) -> tuple[np.ndarray, ...] | None:
    """(steps, mean, lowest, highest) of `tag` over the runs, at the steps all of them
    logged; None if none did."""
    curves = [run.curves[tag] for run in runs if tag in run.curves]
    if not curves:
        return None
    steps = curves[0].steps
    for curve in curves[1:]:
        steps = np.intersect1d(steps, curve.steps)
    values = np.stack([curve.values[np.searchsorted(curve.steps, steps)] for curve in curves])
    return steps, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _curves_figure(settings: Sequence[Setting], metric: str, title_note: str) -> Figure:
    """A panel for train and one for each split evaluated (validation, test, or the split
    the settings are ranked on where none was logged), one line per setting (mean over
    seeds, band of the range)."""
    from matplotlib.figure import Figure

    logged = [
        split
        for split in runlogs.EVALUATED
        if any(f"{split}/{metric}" in run.curves for s in settings for run in s.runs)
    ]
    splits = ["train", *(logged or [settings[0].split if settings else "test"])]
    figure = Figure(figsize=(5 * len(splits), 4), dpi=DPI, layout="constrained")
    panels = dict(zip(splits, figure.subplots(1, len(splits), sharey=True), strict=True))
    smoothed_any, seeds = False, max((len(s.runs) for s in settings), default=1)
    for index, setting in enumerate(settings):
        color = f"C{index % 10}"
        for split, axes in panels.items():
            drawn = seed_curve(setting.runs, f"{split}/{metric}")
            if drawn is None:
                continue
            steps, mean, low, high = drawn
            weight = smoothing_weight(len(mean)) if split == "train" else 0.0
            if weight > 0:
                smoothed_any = True
                axes.plot(steps, mean, color=color, alpha=RAW_ALPHA, linewidth=0.6, zorder=1,
                          label=f"_{setting.label} raw")  # fmt: skip
            axes.plot(steps, smooth(mean, weight), color=color, zorder=2, label=setting.label)
            if len(setting.runs) > 1:  # the range over seeds, smoothed as the line is
                low, high = smooth(low, weight), smooth(high, weight)
                axes.fill_between(steps, low, high, color=color, alpha=BAND_ALPHA, linewidth=0)
    smoothing = ": moving average, raw faint" if smoothed_any else ""
    for split, axes in panels.items():
        whole = f"minibatch{smoothing}" if split == "train" else f"whole {split} split"
        axes.set_title(f"{split} {metric} ({whole})")
        axes.set_xlabel("step")
        axes.grid(True, which="both", alpha=0.3)
    panels["train"].set_ylabel(metric)
    over = f"mean and range over {seeds} seeds" if seeds > 1 else "setting"
    if figure.axes[-1].get_legend_handles_labels()[0]:  # a legend only of lines drawn
        figure.axes[-1].legend(title=over, fontsize=8)
    if title_note:
        figure.suptitle(title_note, fontsize=10)
    return figure


def loss_figure(settings: Sequence[Setting], note: str = "") -> Figure:
    """Train and evaluated loss against step, log scale: it falls tenfold, mostly early on."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    figure = _curves_figure(settings, "loss", note)
    axes = figure.axes[0]
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 20, 50, 100, 200
    axes.yaxis.set_major_formatter(ScalarFormatter())  # 60, not 6x10^1
    axes.yaxis.set_minor_formatter(NullFormatter())
    return figure


def accuracy_floor(settings: Sequence[Setting]) -> float:
    """The bottom of the accuracy axis: 0.8, or lower if a final accuracy is below 0.9."""
    finals = [float(s.finals.min()) for s in settings if s.finals.size]
    return max(0.0, min(0.8, math.floor((min(finals, default=0.9) - 0.1) * 20) / 20))


def accuracy_figure(settings: Sequence[Setting], note: str = "") -> Figure:
    """Train and evaluated accuracy against step, zoomed on the top so the curves are apart."""
    from matplotlib.ticker import PercentFormatter

    figure = _curves_figure(settings, "accuracy", note)
    figure.axes[0].set_ylim(accuracy_floor(settings), 1.0)
    figure.axes[0].yaxis.set_major_formatter(PercentFormatter(xmax=1))
    return figure


def weights_figure(settings: Sequence[Setting]) -> Figure | None:
    """Each setting's first model's labelled weight templates, two settings a row; None
    when none were logged."""
    from matplotlib.figure import Figure

    logged = [run for s in settings for run in s.runs[:1] if run.weights_image is not None]
    if not logged:
        return None
    height, width = logged[0].weights_image.shape[:2]
    columns = min(2, len(logged))
    rows = -(-len(logged) // columns)
    cell_inches = 10 / columns * height / width
    figure = Figure(figsize=(10, rows * (cell_inches + 0.35) + 0.4), dpi=DPI, layout="constrained")
    figure.suptitle(
        "weight templates: blue votes for the class, red against (each scaled to its largest)",
        fontsize=11,
    )
    for axes in figure.subplots(rows, columns, squeeze=False).ravel():
        axes.set_axis_off()
    for axes, run in zip(figure.axes, logged, strict=False):
        axes.imshow(run.weights_image)
        axes.set_title(f"{run.name}, step {run.weights_step}", fontsize=10)
    return figure


def confusion_figure(settings: Sequence[Setting], class_names: Sequence[str]) -> Figure | None:
    """The test confusion matrices of the first CONFUSIONS settings' first models (rows:
    true class, columns: predicted), each cell's count written in it; None if the run
    analysed none."""
    from matplotlib.figure import Figure

    analysed = [run for s in settings for run in s.runs[:1] if run.confusion is not None]
    analysed = analysed[:CONFUSIONS]
    if not analysed:
        return None
    classes = len(analysed[0].confusion)
    figure = Figure(figsize=(5.2 * len(analysed), 5), dpi=DPI, layout="constrained")
    for axes, run in zip(figure.subplots(1, len(analysed), squeeze=False)[0], analysed,
                         strict=True):  # fmt: skip
        matrix = run.confusion
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (row, column), count in np.ndenumerate(matrix):
            color = "white" if shares[row, column] > 0.6 else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
        axes.set_xticks(range(classes), [str(k) for k in range(classes)], fontsize=8)
        axes.set_yticks(range(classes), class_names, fontsize=8)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        accuracy = np.trace(matrix) / matrix.sum()
        axes.set_title(f"{run.name}: {accuracy:.2%} of {matrix.sum()} test images", fontsize=10)
    return figure


# --- Final accuracy against learning rate --------------------------------------------------


def accuracy_vs_learning_rate_figure(settings: Sequence[Setting]) -> Figure:
    """Final accuracy on the settings' split (validation where the run held one out, else
    test) against learning rate (log x): a line per weight decay and momentum (the best
    SHOWN), error bars over seeds; diverged settings in a strip below."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator, PercentFormatter

    figure = Figure(figsize=(6, 4.6), dpi=DPI, layout="constrained")
    axes, strip = figure.subplots(2, 1, sharex=True, height_ratios=(8, 1))
    families: dict[str, list[Setting]] = {}
    for setting in settings:
        if setting.runs and not setting.diverged and setting.finals.size:
            families.setdefault(setting.family, []).append(setting)
    best = [f for f in dict.fromkeys(s.family for s in runlogs.ranked(settings)) if f in families]
    chosen = set(best[:SHOWN])  # the families of the best settings, drawn in sweep order
    shown = [(family, members) for family, members in families.items() if family in chosen]
    for index, (family, members) in enumerate(shown):
        members = sorted(members, key=lambda s: s.point["learning_rate"])
        rates = [s.point["learning_rate"] for s in members]
        means = [float(s.finals.mean()) for s in members]
        spread = [float(s.finals.std(ddof=1)) if s.finals.size > 1 else 0.0 for s in members]
        axes.errorbar(rates, means, yerr=spread if any(spread) else None, color=f"C{index % 10}",
                      marker="o", capsize=3, label=family or None)  # fmt: skip
        if len(shown) == 1 and len(members) <= 12:
            for rate, mean in zip(rates, means, strict=True):
                axes.annotate(f"{mean:.2%}", (rate, mean), textcoords="offset points",
                              xytext=(0, 7), ha="center", fontsize=9)  # fmt: skip
    drawn = [s for _, members in shown for s in members]
    rates = sorted({s.point["learning_rate"] for s in drawn}) or [1.0]
    margin = (max(rates) / min(rates)) ** 0.08 if len(rates) > 1 else 2.0
    limits = (min(rates) / margin, max(rates) * margin)
    axes.set_xscale("log")
    axes.set_xlim(*limits)
    _diverged_strip(strip, settings, limits)
    if len(rates) <= 12:
        labels = {s.point["learning_rate"]: s.rate_label for s in drawn}
        strip.set_xticks(rates, [labels.get(rate, "") for rate in rates])
        strip.xaxis.set_minor_locator(NullLocator())
    axes.margins(y=0.25)
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=2))
    split = settings[0].split if settings else "test"
    axes.set_ylabel(f"final {split} accuracy")
    axes.grid(True, alpha=0.3)
    strip.set_xlabel("learning rate")
    if any(family for family, _ in shown):
        axes.legend(fontsize=8)
    more = (
        f" (the best {len(shown)} of {len(families)} lines)" if len(families) > len(shown) else ""
    )
    axes.set_title(f"final {split} accuracy against learning rate{more}", fontsize=10)
    return figure


def _diverged_strip(strip, settings: Sequence[Setting], limits: tuple[float, float]) -> None:
    """Diverged settings as red crosses on a strip of their own, never on the accuracy axis;
    those beyond the drawn learning rates are named at its edge instead."""
    rates = sorted({s.point["learning_rate"] for s in settings if s.diverged})
    inside = [rate for rate in rates if limits[0] <= rate <= limits[1]]
    if inside:
        strip.scatter(inside, np.zeros(len(inside)), marker="x", color="tab:red", zorder=3)
    labels = {s.point["learning_rate"]: s.rate_label for s in settings}
    for side, beyond, x, align in (
        ("left", [r for r in rates if r < limits[0]], 0.01, "left"),
        ("right", [r for r in rates if r > limits[1]], 0.99, "right"),
    ):
        if beyond:
            arrow = "\u2190 " if side == "left" else ""
            text = f"{arrow}lr {', '.join(labels[r] for r in beyond)}"
            text += " \u2192" if side == "right" else ""
            strip.text(x, 0, text, transform=strip.get_yaxis_transform(), fontsize=8,
                       ha=align, va="center", color="tab:red")  # fmt: skip
    strip.set_yticks([])
    strip.set_ylim(-1, 1)
    strip.set_ylabel("diverged", fontsize=8, rotation=0, ha="right", va="center")
    strip.grid(True, axis="x", alpha=0.3)
    if not rates:
        strip.text(0.5, 0, "none", transform=strip.get_yaxis_transform(), fontsize=8,
                   ha="center", va="center", color="0.5")  # fmt: skip
