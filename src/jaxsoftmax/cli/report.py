"""`python -m jaxsoftmax.report LOGDIR`: PNG figures of a training run, without TensorBoard.

Parses the command line and calls `plots.report.write_figures` (which says what each
figure shows); prints each file written. User mistakes end with one line on stderr and a
non-zero exit, never a traceback.
"""

import argparse
import sys
import types
from collections.abc import Sequence

from jaxsoftmax.cli import common as cmdline
from jaxsoftmax.cli import interrupts
from jaxsoftmax.files import FIGURES_DIR
from jaxsoftmax.plots.report import write_figures


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: a log directory and where the figures go."""
    parser = cmdline.OneLineParser(
        "report",
        (
            "Draw a training run's results and TensorBoard events as PNG figures with "
            "matplotlib: loss and accuracy curves, weight templates, final accuracy against "
            "learning rate. Grids are drawn by setting, with the spread over seeds."
        ),
    )
    parser.add_argument("logdir", type=cmdline.path_argument,
                        help="a folder written by python -m jaxsoftmax.train --logdir")  # fmt: skip
    parser.add_argument("--out", type=cmdline.path_argument, metavar="DIR",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    _read_events_without_tensorflow()

    def draw() -> int:
        paths = write_figures(
            args.logdir, args.out, report=lambda note: print(note, file=sys.stderr)
        )
        for path in paths:
            print(path)
        return 0

    with interrupts.StopOnSignal():  # started: Ctrl-C now raises, and what is written is undone
        return cmdline.run_command(draw, parser)


if __name__ == "__main__":
    sys.exit(main())
