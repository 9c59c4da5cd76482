"""`python -m jaxsoftmax`: the list of commands, the version, and running one by name."""

import importlib
import sys
from collections.abc import Sequence

from jaxsoftmax import __version__

COMMANDS = {
    "train": "train softmax classifiers: a learning-rate sweep, a grid, a search or --auto",
    "predict": "classify pictures, IDX files or .npy arrays with a trained model",
    "export": "write a trained model as ONNX or NumPy arrays",
    "report": "draw a run's figures as PNG files",
}


def usage() -> str:
    lines = [f"jaxsoftmax {__version__}: linear softmax classifiers in JAX", "",
             "usage: python -m jaxsoftmax COMMAND [options]   (or python -m jaxsoftmax.COMMAND)",
             "", "commands:"]  # fmt: skip
    lines += [f"  {name:<8} {what}" for name, what in COMMANDS.items()]
    lines += ["", "python -m jaxsoftmax COMMAND --help explains a command's options;",
              "--version prints the version."]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the commands (no arguments, -h, --help) or the version, or runs COMMAND."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"jaxsoftmax {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"python -m jaxsoftmax: error: no command {argv[0]!r}; the commands are "
              f"{', '.join(COMMANDS)} (see --help)", file=sys.stderr)  # fmt: skip
        return 2
    command = importlib.import_module(f"jaxsoftmax.cli.{argv[0]}")
    return command.main(argv[1:])
