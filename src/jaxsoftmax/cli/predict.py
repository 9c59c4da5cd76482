"""`python -m jaxsoftmax.predict LOGDIR FILE...`: classify images with a trained model.

Each FILE is a picture (PNG, JPEG, BMP, ...), an IDX images file or a `.npy` array
(see `images`); each image gets one line: its file (and index in a file of many) and
the most probable classes with their probabilities. `--json` prints one JSON document
for programs instead. Needs neither JAX nor a compilation: see `trained`.
"""

import argparse
import json
import sys
from collections.abc import Sequence

from jaxsoftmax.cli import common as cmdline
from jaxsoftmax.cli import interrupts
from jaxsoftmax.sweep.config import check_count
from jaxsoftmax.trained import predict
from jaxsoftmax.trained import run as trained


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: a log directory, the model to use, the files."""
    parser = cmdline.OneLineParser(
        "predict",
        (
            "Classify images with a model a training run left in LOGDIR: pictures (PNG, JPEG, "
            "BMP, TIFF; photos framed as the training images are: background and contrast "
            "from the picture, the ink's box scaled and centred as MNIST's digits; see "
            "--raw), IDX images files or .npy arrays of images."
        ),
    )
    cmdline.add_model_choice(parser)
    parser.add_argument("files", type=cmdline.path_argument, nargs="+", metavar="FILE",
                        help="pictures, IDX images files or .npy arrays of images")  # fmt: skip
    parser.add_argument("--invert", action=argparse.BooleanOptionalAction,
                        help="invert pictures (light on dark becomes dark on light); default: "
                        "when their background is not the training images'")  # fmt: skip
    parser.add_argument("--raw", action="store_true",
                        help="do not frame pictures: only pad them to a square, resize and "
                        "invert them; --json says what was done to each")  # fmt: skip
    parser.add_argument("--top", type=cmdline.argument_type(int, lambda k: check_count("--top", k)),
                        default=3, help="how many classes to show for each image")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="one JSON document on stdout instead of lines")  # fmt: skip
    return parser


def describe(prediction: dict) -> str:
    """One line: `digit.png: 7 (98.1%), 9 (1.2%), 4 (0.3%)`."""
    where = prediction["file"]
    if prediction["index"] is not None:
        where += f"#{prediction['index']}"
    ranked = ", ".join(f"{c['name']} ({c['probability']:.1%})" for c in prediction["top"])
    return f"{where}: {ranked}"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def classify() -> int:
        model = trained.choose(trained.load_run(args.logdir), args.run, best=args.best)
        predictions, errors = predict.predict_files(model, args.files, invert=args.invert,
                                                    top=args.top, raw=args.raw)  # fmt: skip
        if args.json:
            document = {"logdir": str(args.logdir), "run": model.name, "predictions": predictions}
            print(json.dumps(document | ({"errors": errors} if errors else {}), indent=1))
        elif predictions:
            print("\n".join(map(describe, predictions)))
        for error in errors:  # what could be classified was; the rest, a line each
            print(f"error: {error}", file=sys.stderr)
        return cmdline.EXIT_DATA if errors else 0

    with interrupts.StopOnSignal():  # started: Ctrl-C now raises, and what is written is undone
        return cmdline.run_command(classify, parser)


if __name__ == "__main__":
    sys.exit(main())
