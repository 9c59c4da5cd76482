"""`python -m jaxsoftmax.predict`: classify images with a trained model (see `--help`)."""

import sys

if __name__ == "__main__":  # a signal while the imports below take a second: exit
    try:
        from jaxsoftmax.cli import interrupts

        interrupts.exit_on_signal()
    except KeyboardInterrupt:  # Ctrl-C before the handlers were in place: the same line
        sys.stderr.write("interrupted by SIGINT while starting\n")
        sys.exit(130)

from jaxsoftmax.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
