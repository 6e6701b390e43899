"""Ctrl-C and SIGTERM that wait for the storage to be consistent before they stop a worker.

A signal that arrives while a trial is being claimed, created or closed is held back and
raised as ``KeyboardInterrupt`` as soon as that is done; one that arrives while the trial
trains is raised at once, and Optuna closes the trial as FAIL. After the first interrupt,
later ones are ignored so that the cleanup finishes. ``on_stop`` is called as the first one
arrives, held or not: the closing that follows may take many seconds, and should not be silent.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


class Interrupts:
    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.held = 0  # depth of the sections that must not be cut
        self.pending = False
        self.stopping = False
        self.on_stop = on_stop
        self._previous: dict[int, object] = {}

    def install(self) -> Interrupts:
        """Handle SIGINT and SIGTERM here (main thread only; elsewhere it does nothing)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.stopping or self.pending:
            return
        if self.on_stop is not None:
            # A print cut by this very handler (a signal lands mid-write) refuses to be re-entered.
            with contextlib.suppress(RuntimeError):
                self.on_stop()
        if self.held:
            self.pending = True
            return
        self.stopping = True
        raise KeyboardInterrupt

    def hold(self) -> None:
        self.held += 1

    def release(self) -> None:
        """Leave a held section; an interrupt that came meanwhile is raised now."""
        self.held -= 1
        if not self.held and self.pending and not self.stopping:
            self.pending = False
            self.stopping = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held_section(self) -> Iterator[None]:
        self.hold()
        try:
            yield
        finally:
            self.release()


NONE = Interrupts()  # a stand-in that never sees a signal: for workers run outside the main thread
