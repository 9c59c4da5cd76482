"""`python -m jaxsoftmax.predict`: classify images with a trained model (see `--help`)."""

import sys

from jaxsoftmax.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
