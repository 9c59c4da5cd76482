"""A command before it has started: SIGINT and SIGTERM end it at once, in one line.

`python -m jaxsoftmax.COMMAND` takes a second to import JAX; until the command installs
its own handlers (`cli.interrupts.StopOnSignal`) a signal ends the process at once with
128 + the signal: nothing is started yet that could be saved, and an exception raised
while modules import would be a traceback (in a garbage collector's callback, dropped;
inside an extension module's initialisation, as jaxlib's, a crash). The package installs
this first thing when it is started as a command (see its `__init__`).
"""

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_on_signal() -> None:
    """SIGINT and SIGTERM end the process at once (`leave`); in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in SIGNALS:
        signal.signal(number, lambda number, frame: leave(number))


def leave(number: int) -> None:
    """Ends the process at once with 128 + `number` and one line (no exception)."""
    os.write(2, f"interrupted by {signal.Signals(number).name} while starting\n".encode())
    os._exit(128 + number)
