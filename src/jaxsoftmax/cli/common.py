"""What every jaxsoftmax command shares: one-line errors, exit statuses, help that reads well.

A user's mistake ends a command with one line on stderr and a non-zero exit status,
never a traceback: 2 for bad arguments, 1 for problems with data or files, 128 + the
signal for an interruption. Anything else is a bug and keeps its traceback.
"""

import argparse
import pathlib
import re
import sys
from collections.abc import Callable

from jaxsoftmax import files
from jaxsoftmax.errors import ConfigError, JaxsoftmaxError

EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def path_argument(text: str) -> pathlib.Path:
    """An argparse type: a path, refused when empty or blank (which would mean the current
    folder: `--logdir "$UNSET"` must not write into the folder a command runs in)."""
    path = files.given_path(text, argparse.ArgumentTypeError)
    try:
        path.resolve()
    except (RuntimeError, OSError) as error:  # a symlink loop: Python raises RuntimeError
        raise argparse.ArgumentTypeError(f"{text}: cannot be resolved ({error})") from None
    return path


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds `(default: ...)` to a flag's help only where the default is a value worth
    showing and the help text does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        quiet = action.default is None or action.default is False  # unset, or a plain switch
        if quiet or action.default == argparse.SUPPRESS or "default" in text:
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit status 2."""

    def __init__(self, command: str, description: str, **kwargs):
        """The parser of `python -m jaxsoftmax.<command>`, which does `description`."""
        super().__init__(
            prog=f"python -m jaxsoftmax.{command}", description=description,
            formatter_class=HelpFormatter, **kwargs,
        )  # fmt: skip
        from jaxsoftmax import __version__

        self.add_argument("--version", action="version", version=f"jaxsoftmax {__version__}")

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def argument_type(convert: Callable, check: Callable | None = None) -> Callable:
    """An argparse type: `convert` the text (int, float, ...), then `check` the value
    (a rule's owner, raising ConfigError), each failure one line."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            kind = "a whole number" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if check is not None:
            try:
                value = check(value)
            except ConfigError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        return value

    return parse


def add_model_choice(parser: argparse.ArgumentParser) -> None:
    """LOGDIR and --run NAME | --best: which trained model a command uses (see
    `trained.choose`)."""
    parser.add_argument("logdir", type=path_argument, metavar="LOGDIR",
                        help="a folder written by python -m jaxsoftmax.train")  # fmt: skip
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="NAME",
                       help="the model's run name, e.g. lr=0.005 (default: the run's only "
                       "model)")  # fmt: skip
    which.add_argument("--best", action="store_true",
                       help="the model with the best validation accuracy (never chosen on "
                       "the test set)")  # fmt: skip


def run_command(work: Callable[[], int], parser: argparse.ArgumentParser | None = None) -> int:
    """Runs a command's body; turns a user's mistake into one line on stderr (in the
    words of `parser`'s flags, see `in_flags`) and the exit status it calls for."""
    try:
        return work()
    except ConfigError as error:
        return _fail(f"error: {in_flags(str(error), parser)}", EXIT_USAGE)
    except JaxsoftmaxError as error:
        return _fail(f"error: {in_flags(str(error), parser)}", EXIT_DATA)
    except OSError as error:
        # The machine refused (disk full, permissions) where no better message was given.
        where = f": {error.filename}" if error.filename else ""
        return _fail(f"error: {error.strerror or error}{where}", EXIT_DATA)
    except KeyboardInterrupt as interrupted:  # Ctrl-C, or interrupts.Interrupted
        return _fail("interrupted", getattr(interrupted, "exit_status", EXIT_INTERRUPTED))


_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`(?:=(\S+))?")


def in_flags(message: str, parser: argparse.ArgumentParser | None) -> str:
    """A library error in the command line's words: the library names a parameter as
    `name` (or `name`=VALUE); where the command has it as a flag, the flag stands
    there instead (--name VALUE)."""
    flags = {}
    for action in getattr(parser, "_actions", ()):  # argparse lists them nowhere public
        long = [option for option in action.option_strings if option.startswith("--")]
        if long:
            flags[action.dest] = long[0]

    def flag(match: re.Match) -> str:
        name, value = match.groups()
        if name not in flags:
            return match.group(0)
        return flags[name] + (f" {value}" if value else "")

    return _PARAMETER.sub(flag, message)


def _fail(message: str, status: int) -> int:
    print(message, file=sys.stderr)
    return status
