"""An exact trial budget shared by every worker of a study, on any machine.

Optuna's ``MaxTrialsCallback`` checks after a trial ends, so N workers overshoot by up
to N-1 trials. Here a worker claims a slot before its trial starts, under a lock that
all workers of the study share: an advisory lock on PostgreSQL, a file lock beside a
SQLite database (``search.storage.StudyLock``). A slot is free while finished (COMPLETE or PRUNED) plus RUNNING
trials stay below the budget; a trial that fails gives its slot back.
"""

from __future__ import annotations

import collections
import copy
import datetime
import enum
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage

from search import records


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
    def of(cls, storage: BaseStorage, study: optuna.Study) -> Counts:
        """Trials by state, counted in the database (no trial is loaded) or in a Journal log's replay."""
        if isinstance(storage, RDBStorage):
            query = sqlalchemy.text("SELECT state, COUNT(*) FROM trials WHERE study_id = :sid GROUP BY state")
            with storage.engine.connect() as conn:
                by_state = {str(state).split(".")[-1]: n for state, n in conn.execute(query, {"sid": study._study_id})}
        else:
            trials = storage.get_all_trials(study._study_id, deepcopy=False)
            by_state = collections.Counter(t.state.name for t in trials)
        return cls(
            finished=sum(by_state.get(state.name, 0) for state in records.FINISHED_STATES),
            running=by_state.get("RUNNING", 0),
            waiting=by_state.get("WAITING", 0),
            failed=by_state.get("FAIL", 0),
        )


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


def fail_silent_trials(storage: BaseStorage, study: optuna.Study, grace_seconds: float) -> None:
    """Fail RUNNING trials that never sent a heartbeat and started over ``grace_seconds`` ago.

    Optuna's ``fail_stale_trials`` looks only at trials with a heartbeat; a worker killed
    between creating its trial and its first heartbeat would otherwise hold a budget slot
    for ever. Their parameters are queued again like any stale trial's.
    """
    # Optuna stores datetime_start as naive local time.
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_seconds)
    if isinstance(storage, RDBStorage):
        query = sqlalchemy.text(
            "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            "WHERE t.study_id = :sid AND t.state = 'RUNNING' AND h.trial_id IS NULL AND t.datetime_start < :cutoff"
        )
        with storage.engine.connect() as conn:
            silent = [row[0] for row in conn.execute(query, {"sid": study._study_id, "cutoff": cutoff})]
    else:  # a Journal log keeps its heartbeats beside it (search.storage._Journal)
        silent = storage.silent_trial_ids(study._study_id, cutoff)  # type: ignore[attr-defined]
    callback = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    for trial_id in silent:
        try:
            if storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL) and callback is not None:
                callback(study, copy.deepcopy(storage.get_trial(trial_id)))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
