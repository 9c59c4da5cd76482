"""`python -m jaxsoftmax`: what the commands are, `--version`, or `python -m jaxsoftmax
COMMAND ...` to run one (the same as `python -m jaxsoftmax.COMMAND ...`)."""

import sys

from jaxsoftmax.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
