"""`python -m jaxsoftmax.train`: train a learning-rate sweep (see `--help`)."""

import sys

if __name__ == "__main__":  # a signal while the imports below take a second: exit
    from jaxsoftmax.cli import interrupts

    interrupts.exit_on_signal()

from jaxsoftmax.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
