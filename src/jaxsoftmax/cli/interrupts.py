"""Ctrl-C and SIGTERM for the command line: stop cleanly when training, at once otherwise."""

import contextlib
import gc
import signal
import threading
from collections.abc import Iterator

from jaxsoftmax.starting import SIGNALS, leave


class Interrupted(KeyboardInterrupt):
    """Raised when a signal stops the program; `exit_status` is the shell's 128 + signal."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number

    @property
    def exit_status(self) -> int:
        return 128 + self.signal_number


class StopOnSignal(contextlib.AbstractContextManager):
    """Handles SIGINT and SIGTERM while in use (in the main thread; elsewhere, nothing).

    Normally a signal raises `Interrupted` at once. Inside `deferred()`, the first
    signal only records itself in `requested` (training then stops at the end of its
    chunk, saving what it has); a second one raises `Interrupted` at once. The
    handler prints nothing: writing to stderr from it could re-enter a write the
    program was making (a progress bar's), which Python refuses with an error.
    """

    def __init__(self, *, starting: bool = False):
        """`starting`: until `started()`, a signal ends the process at once, as
        `starting.exit_on_signal` does (JAX is still importing: nothing to save)."""
        self.requested: int | None = None
        self._starting = starting
        self._deferring = False
        self._previous = {}

    def __enter__(self):
        self.install()
        return self

    def install(self) -> None:
        """(Re)installs the handlers: call it again after anything that takes the signals
        for itself (jax.distributed's preemption notifier takes SIGTERM)."""
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                previous = signal.signal(number, self._handle)
                self._previous.setdefault(number, previous)

    def started(self) -> None:
        """From now on a signal raises `Interrupted` (or asks to stop, when deferred);
        the handlers are installed again (see `install`)."""
        self._starting = False
        self.install()

    def __exit__(self, *exc_info):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number, frame):
        if self._starting:
            leave(number)
        first = self.requested is None
        if first:  # kept: `deferred` raises it where it cannot be raised now
            self.requested = number
        if (not self._deferring or not first) and not _unraisable(frame):
            raise Interrupted(number)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within this block, a first signal asks to stop instead of stopping.

        A signal that came before it stops the program here: it came where an exception
        cannot be raised (a garbage collector's callback, as JAX's run while it starts,
        or a `__del__`: Python would print it and drop it), and the program went on.

        Raises:
          Interrupted: a signal has come already.
        """
        if self.requested is not None:
            raise Interrupted(self.requested)
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False


def _unraisable(frame) -> bool:
    """Whether an exception raised in `frame` would be dropped by Python (printed as
    'Exception ignored in ...'): it runs a garbage collector's callback or a `__del__`."""
    callbacks = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False
