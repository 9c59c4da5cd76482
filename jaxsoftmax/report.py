"""`python -m jaxsoftmax.report`: PNG figures of a training run (see `--help`)."""

import sys

if __name__ == "__main__":  # a signal while the imports below take a second: exit
    try:
        from jaxsoftmax.cli import interrupts

        interrupts.exit_on_signal()
    except KeyboardInterrupt:  # Ctrl-C before the handlers were in place: the same line
        sys.stderr.write("interrupted by SIGINT while starting\n")
        sys.exit(130)

from jaxsoftmax.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
