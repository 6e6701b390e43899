"""Stale trials are failed and queued again under the study's lock: each once, owed points first."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search import records
from search.run.budget import Counts, Verdict, claim
from search.run.worker import _enqueue_next, _points_handed_out, requeue_stale_trials
from search.storage import open_store


def _stale_study(tmp_path: Path, stale: int) -> tuple[optuna.storages.RDBStorage, optuna.Study, list[dict], object]:
    """Ten points; the first ``stale`` handed out and RUNNING with a heartbeat that stopped."""
    store = open_store(f"sqlite:///{tmp_path / 'studies.db'}", heartbeat=1)
    study = optuna.create_study(study_name="s", storage=store.storage, direction="maximize")
    points = [{"x": i} for i in range(10)]
    for index in range(stale):
        study.enqueue_trial(points[index], user_attrs={records.POINT: index})
    for _ in range(stale):
        trial = study.ask()
        store.storage.record_heartbeat(trial._trial_id)
    time.sleep(3.5)  # past the grace period (twice the heartbeat; SQLite stamps whole seconds)
    return store.storage, study, points, store


def test_two_workers_requeueing_at_once_queue_each_stale_trial_once(tmp_path: Path) -> None:
    storage, study, _, store = _stale_study(tmp_path, stale=3)
    locks = [store.lock("s") for _ in range(2)]

    def requeue(lock: object) -> None:
        with lock:
            requeue_stale_trials(storage, study, 2.0)

    threads = [threading.Thread(target=requeue, args=(lock,)) for lock in locks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert sorted(records.point(t) for t in waiting) == [0, 1, 2]


def test_a_point_failed_for_a_dead_worker_and_not_yet_queued_comes_before_any_new_one(tmp_path: Path) -> None:
    storage, study, points, _ = _stale_study(tmp_path, stale=3)
    # Optuna's first half alone (a worker killed before its retry callback ran): failed, nothing waiting.
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    next_point = lambda slots: _enqueue_next(study, points, slots, None)  # noqa: E731
    assert claim(Counts.of(storage, study), 5, next_point) is Verdict.RUN
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [records.point(t) for t in waiting] == [0]  # the owed point at once, no grace for a new one
    assert _points_handed_out(study) == ([1, 2], 3)
