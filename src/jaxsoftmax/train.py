"""`python -m jaxsoftmax.train`: train a learning-rate sweep (see `--help`)."""

import sys

from jaxsoftmax.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
