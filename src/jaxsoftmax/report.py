"""`python -m jaxsoftmax.report`: PNG figures of a training run (see `--help`)."""

import sys

from jaxsoftmax.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
