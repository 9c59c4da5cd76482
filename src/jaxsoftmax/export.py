"""`python -m jaxsoftmax.export`: a trained model as ONNX or NumPy arrays (see `--help`)."""

import sys

from jaxsoftmax.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
