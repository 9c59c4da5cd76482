"""PNG figures of a training run, without TensorBoard (`write_figures`).

Draws any run the trainer writes (a plain sweep, a grid over any axes, diverged models,
grids of thousands) with matplotlib's object-oriented API (no pyplot, no display):

- `loss.png`, `accuracy.png`: train, validation and test curves against step (the splits
  the run evaluated), one line per setting (learning rate, weight decay, momentum); where
  seeds vary, the mean over them with a band from the lowest to the highest;
- `weights.png`: each drawn setting's weight templates (its first seed), classes named;
- `accuracy_vs_learning_rate.png`: final accuracy against learning rate, a line per
  weight decay and momentum, error bars over seeds.

Settings are ranked and compared on the validation split where the run held one out (a
search, `--validation N`), else on the test split. A grid of more than SHOWN settings is
drawn for its best SHOWN by that final accuracy (the others are counted in the titles;
results.json has them all). A diverged model is never
drawn as an ordinary point: it is left out of curves and lines, and named in a strip of
its own. matplotlib is optional (`pip install 'jaxsoftmax[plot]'`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

from jaxsoftmax.errors import JaxsoftmaxError
from jaxsoftmax.files import FIGURE_FILES, FIGURES_DIR
from jaxsoftmax.outputs import runlogs
from jaxsoftmax.outputs.runlogs import Setting, drawable, group_settings, note_on
from jaxsoftmax.plots.figures import (
    DPI,
    PNG_METADATA,
    accuracy_figure,
    accuracy_vs_learning_rate_figure,
    confusion_figure,
    loss_figure,
    weights_figure,
)

SWEEP_PNG, CONFUSION_PNG, LOSS_PNG, ACCURACY_PNG, WEIGHTS_PNG = FIGURE_FILES


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
      report: told a note for each figure skipped, and which settings are drawn.

    Returns:
      The paths written: loss.png, accuracy.png, weights.png (each when events were
      logged) and accuracy_vs_learning_rate.png.

    Raises:
      DataError: `logdir` holds no run the trainer wrote.
      JaxsoftmaxError: matplotlib is not installed, or `out_dir` cannot be written.
    """
    _require_matplotlib()
    logdir = pathlib.Path(logdir)
    out_dir = logdir / FIGURES_DIR if out_dir is None else pathlib.Path(out_dir)
    say = report or (lambda note: None)
    document = runlogs.read_results(logdir)
    settings = group_settings(runlogs.run_logs(document))
    drawn = drawable(settings)
    logged = [s for s in drawn if runlogs.has_events(logdir, s.runs[0])]
    drawn = [_read_events(logdir, s) for s in logged]
    note = note_on(settings, drawn)
    figures = {SWEEP_PNG: accuracy_vs_learning_rate_figure(settings)}
    class_names = document.get("data", {}).get("class_names")
    confusion = confusion_figure(drawable(settings), class_names) if class_names else None
    if confusion is not None:
        figures[CONFUSION_PNG] = confusion
    if drawn:
        curves = {
            LOSS_PNG: loss_figure(drawn, note),
            ACCURACY_PNG: accuracy_figure(drawn, note),
        }
        figures = curves | {WEIGHTS_PNG: weights_figure(drawn)} | figures
        if figures[WEIGHTS_PNG] is None:
            say("note: no 'weights' image in the run's events; weights.png skipped")
    else:
        say(f"note: {logdir} holds no TensorBoard events (trained with --no-summaries?); "
            "loss.png, accuracy.png and weights.png skipped")  # fmt: skip
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, figure in figures.items():
            if figure is not None:
                figure.savefig(out_dir / name, dpi=DPI, metadata=PNG_METADATA)
                written.append(out_dir / name)
    except OSError as error:
        raise JaxsoftmaxError(
            f"cannot write figures to {out_dir} ({error.strerror or error})"
        ) from None
    return written


def _read_events(logdir: pathlib.Path, setting: Setting) -> Setting:
    runs = tuple(runlogs.with_events(logdir, run) for run in setting.runs)
    return dataclasses.replace(setting, runs=runs)


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise JaxsoftmaxError(
            "the figures need matplotlib: pip install 'jaxsoftmax[plot]'"
        ) from None
