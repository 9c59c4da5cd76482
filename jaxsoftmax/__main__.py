"""`python -m jaxsoftmax`: what the commands are, `--version`, or `python -m jaxsoftmax
COMMAND ...` to run one (the same as `python -m jaxsoftmax.COMMAND ...`)."""

import sys

if __name__ == "__main__":  # a signal while the imports below take a second: exit
    from jaxsoftmax.cli import interrupts

    interrupts.exit_on_signal()

from jaxsoftmax.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
