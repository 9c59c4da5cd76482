"""Ctrl-C and SIGTERM for the command line: stop cleanly when training, at once otherwise."""

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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

    def __init__(self):
        self.requested: int | None = None
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

    def __exit__(self, *exc_info):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number, frame):
        if not self._deferring or self.requested is not None:
            raise Interrupted(number)
        self.requested = number

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within this block, a first signal asks to stop instead of stopping."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
