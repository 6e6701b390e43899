"""Writes that a Ctrl-C or a SIGTERM does not cut: the signal waits until the file is whole, then acts."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are noted, not acted on; as it ends, the first one noted
    goes to the handler in place before (Python's ``KeyboardInterrupt``, a search run's own, the
    default end of the process), even when the block raised.

    A signal acted on inside a write can leave the file cut short, or be lost: raised within
    ``torch.save``'s writer, a ``KeyboardInterrupt`` comes out as a ``RuntimeError``, which a
    caller that skips failed saves would swallow. Blocks nest. On a thread other than the main
    one, where no handler can be set and no signal is acted on, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: came.append(signum)) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler set outside Python, which cannot be put back
                signal.signal(sig, handler)
        if came:
            signal.raise_signal(came[0])
