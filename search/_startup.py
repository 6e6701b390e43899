"""A quiet start: Ctrl-C while ``python -m search`` loads torch and Optuna ends in one line, not a traceback;
and a quiet Optuna once it is loaded."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator


def _stop(signum: int, frame: object) -> None:
    # At once, not by raising SystemExit: raised in a finalizer that the garbage collector runs
    # during an import, it would be "ignored" by CPython and the command would go on.
    print("interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)


@contextlib.contextmanager
def quiet_interrupts() -> Iterator[None]:
    """Within the block, SIGINT ends the process with ``interrupted`` and exit 130; the old handler after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def quiet_optuna() -> None:
    """Optuna's per-trial INFO lines and its notes on experimental features would bury our progress."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
