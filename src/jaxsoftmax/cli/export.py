"""`python -m jaxsoftmax.export LOGDIR -o FILE`: a trained model for other runtimes.

Writes what `trained.export.write` makes (an existing file is kept unless `--overwrite`):

- `--format onnx`: an ONNX graph from uint8 images (N, height, width) to class
  probabilities (N, classes) and the predicted class `label` (N,), the scaling to [0, 1]
  inside it. Built with `onnx.helper` node by node (Cast, Div, Reshape, MatMul, Add,
  Softmax, ArgMax): the model is those seven operations, written here exactly, with no
  converter to trace JAX and no JAX at all. Needs the export extra: `pip install
  'jaxsoftmax[export]'`.
- `--format npz`: plain NumPy arrays `w` (features, classes), `b` (classes,),
  `image_shape` and `class_names`, for any program with NumPy (README shows ten lines).
"""

import argparse
import sys
from collections.abc import Sequence

from jaxsoftmax.cli import common as cmdline
from jaxsoftmax.cli import interrupts
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.trained import run as trained
from jaxsoftmax.trained.export import FORMATS, write


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = cmdline.OneLineParser(
        "export",
        "Write a model a training run left in LOGDIR as ONNX (uint8 images in, "
        "class probabilities out) or as plain NumPy arrays.",
    )
    cmdline.add_model_choice(parser)
    parser.add_argument("--format", choices=FORMATS, default="onnx", dest="export_format",
                        help="onnx (needs the export extra) or npz")  # fmt: skip
    parser.add_argument("-o", "--output", type=cmdline.path_argument, required=True, metavar="FILE",
                        help="the file to write")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true",
                        help="replace FILE if it exists")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; prints the file written; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def export() -> int:
        if args.output.exists() and not args.overwrite:
            raise ConfigError(f"{args.output} exists; choose another file or pass --overwrite")
        if args.output.is_dir() or not args.output.parent.is_dir():
            raise ConfigError(f"-o {args.output}: not a file in an existing folder")
        model = trained.choose(trained.load_run(args.logdir), args.run, best=args.best)
        write(model, args.output, args.export_format)
        print(args.output)
        return 0

    with interrupts.StopOnSignal():  # started: Ctrl-C now raises, and what is written is undone
        return cmdline.run_command(export, parser)


if __name__ == "__main__":
    sys.exit(main())
