"""An exact trial budget shared by every worker of a study, on any machine.

Optuna's ``MaxTrialsCallback`` checks after a trial ends, so N workers overshoot by up
to N-1 trials. Here a worker claims a slot before its trial starts, under a lock that
all workers of the study share: an advisory lock on PostgreSQL, a file lock beside a
SQLite database. A slot is free while finished (COMPLETE or PRUNED) plus RUNNING
trials stay below the budget; a trial that fails gives its slot back.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage

from search.storage import file_lock, sqlite_path
from trainer import optim


class Verdict(enum.Enum):
    RUN = "run"  # a slot is claimed: start a trial now, while the lock is held
    WAIT = "wait"  # running trials hold the remaining slots; one may fail and free it
    DONE = "done"  # the budget is reached, or (grid, oat) every point has run


@dataclass(frozen=True)
class Counts:
    finished: int = 0
    running: int = 0
    waiting: int = 0
    failed: int = 0

    @classmethod
    def of(cls, storage: RDBStorage, study: optuna.Study) -> Counts:
        """Trials by state, counted in the database (no trial is loaded)."""
        query = sqlalchemy.text("SELECT state, COUNT(*) FROM trials WHERE study_id = :sid GROUP BY state")
        with storage.engine.connect() as conn:
            by_state = {str(state).split(".")[-1]: n for state, n in conn.execute(query, {"sid": study._study_id})}
        return cls(
            finished=by_state.get("COMPLETE", 0) + by_state.get("PRUNED", 0),
            running=by_state.get("RUNNING", 0),
            waiting=by_state.get("WAITING", 0),
            failed=by_state.get("FAIL", 0),
        )


class StudyLock:
    """A lock over one study shared by every process that opens the same storage."""

    def __init__(self, url: str, study_name: str) -> None:
        self._db = sqlite_path(url)
        self._key = int.from_bytes(hashlib.sha1(f"mnist-hpo:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._url = url
        self._engine: sqlalchemy.Engine | None = None
        self._held: Any = None

    def acquire(self) -> None:
        if self._db is not None:
            self._held = contextlib.ExitStack()
            self._held.enter_context(file_lock(self._db))
            return
        if self._engine is None:
            from search.storage import _engine

            engine_url, kwargs = _engine(self._url)
            self._engine = sqlalchemy.create_engine(engine_url, poolclass=sqlalchemy.pool.NullPool, **kwargs)
        self._held = self._engine.connect()
        self._held.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        self._held.commit()

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if self._db is not None:
            held.close()
            return
        try:
            held.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            held.commit()
        finally:
            held.close()  # closing the session releases the lock in any case

    @property
    def held(self) -> bool:
        return self._held is not None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim(
    counts: Counts,
    budget: int,
    next_point: Callable[[int], bool] | None = None,
) -> Verdict:
    """Decide, under the study's lock, whether this worker may start a trial now.

    ``next_point`` (grid and oat studies) enqueues the study's next unrun points, at
    most as many as the free slots it is given, and returns False when every point has
    been handed out; it is called only when no trial is waiting.
    """
    if counts.finished >= budget:
        return Verdict.DONE
    if counts.finished + counts.running >= budget:
        return Verdict.WAIT
    if next_point is None or counts.waiting > 0 or next_point(budget - counts.finished - counts.running):
        return Verdict.RUN
    return Verdict.WAIT if counts.running else Verdict.DONE


def fail_silent_trials(storage: RDBStorage, study: optuna.Study, grace_seconds: float) -> None:
    """Fail RUNNING trials that never sent a heartbeat and started over ``grace_seconds`` ago.

    Optuna's ``fail_stale_trials`` looks only at trials with a heartbeat; a worker killed
    between creating its trial and its first heartbeat would otherwise hold a budget slot
    for ever. Their parameters are queued again like any stale trial's.
    """
    query = sqlalchemy.text(
        "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
        "WHERE t.study_id = :sid AND t.state = 'RUNNING' AND h.trial_id IS NULL AND t.datetime_start < :cutoff"
    )
    # Optuna stores datetime_start as naive local time.
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_seconds)
    with storage.engine.connect() as conn:
        silent = [row[0] for row in conn.execute(query, {"sid": study._study_id, "cutoff": cutoff})]
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial_id in silent:
        try:
            if storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL) and callback is not None:
                callback(study, copy.deepcopy(storage.get_trial(trial_id)))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first


# Eight workers held 7.5 GB on a one-trial budget (torch, MNIST on the device, Optuna): about 1 GB each.
WORKER_MEMORY_BYTES = 1 << 30


def plan_workers(asked: int, remaining: int, available_bytes: int | None) -> tuple[int, str | None]:
    """How many workers to start, and a one-line note when that differs from ``asked`` or memory is short.

    Never more workers than trials remain (at least one, to end the study cleanly); a warning,
    not a cap, when the workers' expected memory (``WORKER_MEMORY_BYTES`` each) exceeds
    ``available_bytes``, since the estimate is rough.
    """
    workers = max(1, min(asked, remaining))
    notes = []
    if workers < asked:
        notes.append(f"{asked} workers asked, {remaining} trial(s) left: starting {workers}")
    if available_bytes is not None and workers * WORKER_MEMORY_BYTES > available_bytes:
        notes.append(
            f"{workers} workers need about {workers * WORKER_MEMORY_BYTES / 1e9:.1f} GB, "
            f"{available_bytes / 1e9:.1f} GB is available: pass fewer --workers if memory runs out"
        )
    return workers, ("note: " + "; ".join(notes)) if notes else None


def plan_compile(asked: str, cpu: bool, work_per_worker: float) -> tuple[bool, str | None]:
    """Whether workers compile the CPU's Adadelta update, and a one-line note when they do.

    ``auto`` compiles on the CPU when a worker's share of the study, in parameters x
    optimizer steps, is beyond the compile's payback (``trainer.optim.worth_compiling``);
    on a GPU nothing is compiled (CUDA graphs already remove the launches).
    """
    if not cpu or asked == "off" or (asked == "auto" and not optim.worth_compiling(work_per_worker)):
        return False, None
    return True, (
        f"note: each worker compiles the Adadelta update first (5-35 s; its share of the study is "
        f"{work_per_worker:.1e} parameter-steps, payback after {optim.COMPILE_PAYBACK_ELEMENT_STEPS:.0e}); "
        "--compile off skips it"
    )


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
