"""`python -m jaxsoftmax.report`: PNG figures of a training run (see `--help`)."""

import sys

if __name__ == "__main__":  # a signal while the imports below take a second: exit
    from jaxsoftmax.cli import interrupts

    interrupts.exit_on_signal()

from jaxsoftmax.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
