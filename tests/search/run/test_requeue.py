"""Stale trials are failed and queued again under the study's lock: each once, owed points first."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import records
from search.run.budget import Counts, Verdict, claim
from search.run.worker import _enqueue_next, _points_handed_out, requeue_stale_trials
from search.storage import open_store
from tests.search.conftest import (
    FILE_STORAGES,
    fast_flags,
    file_url,
    fresh_pg_database,
    readable,
    run_search,
    start_search,
)


def _stale_study(
    tmp_path: Path, stale: int, url: str | None = None
) -> tuple[optuna.storages.RDBStorage, optuna.Study, list[dict], object]:
    """Ten points; the first ``stale`` handed out and RUNNING with a heartbeat that stopped."""
    store = open_store(url or f"sqlite:///{tmp_path / 'studies.db'}", heartbeat=1)
    study = optuna.create_study(study_name="s", storage=store.storage, direction="maximize")
    points = [{"x": i} for i in range(10)]
    for index in range(stale):
        study.enqueue_trial(points[index], user_attrs={records.POINT: index})
    for _ in range(stale):
        trial = study.ask()
        store.storage.record_heartbeat(trial._trial_id)
    time.sleep(3.5)  # past the grace period (twice the heartbeat; SQLite stamps whole seconds)
    return store.storage, study, points, store


@pytest.mark.parametrize("kind", FILE_STORAGES)
def test_two_workers_requeueing_at_once_queue_each_stale_trial_once(tmp_path: Path, kind: str) -> None:
    _requeue_twice_at_once(tmp_path, file_url(kind, tmp_path))


@pytest.mark.postgres
def test_two_workers_requeueing_at_once_on_postgresql_queue_each_stale_trial_once(tmp_path: Path) -> None:
    with fresh_pg_database("mnist_hpo_requeue") as name:
        _requeue_twice_at_once(tmp_path, f"postgresql://postgres@127.0.0.1:5432/{name}")


def _requeue_twice_at_once(tmp_path: Path, url: str | None = None) -> None:
    storage, study, _, store = _stale_study(tmp_path, 3, url)
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


@pytest.mark.parametrize("kind", FILE_STORAGES)
def test_a_point_failed_for_a_dead_worker_and_not_yet_queued_comes_before_any_new_one(
    tmp_path: Path, kind: str
) -> None:
    storage, study, points, _ = _stale_study(tmp_path, stale=3, url=file_url(kind, tmp_path))
    # Optuna's first half alone (a worker killed before its retry callback ran): failed, nothing waiting.
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    next_point = lambda slots: _enqueue_next(study, points, slots, None)  # noqa: E731
    assert claim(Counts.of(storage, study), 5, next_point) is Verdict.RUN
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [records.point(t) for t in waiting] == [0]  # the owed point at once, no grace for a new one
    assert _points_handed_out(study) == ([1, 2], 3)


@pytest.mark.slow  # real worker processes, one killed: about a minute on two cores
@pytest.mark.parametrize("kind", FILE_STORAGES)
def test_a_worker_killed_mid_group_leaves_each_point_run_once(mnist_dir: Path, tmp_path: Path, kind: str) -> None:
    storage, trials = file_url(kind, tmp_path), 12
    args = ["grid", "--storage", storage, "--trials", str(trials), "--workers", "3", "--heartbeat", "1"]
    args += ["--max-epochs", "4", "--compile", "off", *fast_flags(mnist_dir)]
    proc = start_search(*args, cwd=tmp_path)
    artifacts, deadline, killed = tmp_path / "studies-artifacts", time.monotonic() + 300, False
    while proc.poll() is None and not killed and time.monotonic() < deadline:
        workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        workers = [p for p in workers if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        if any(artifacts.glob("checkpoint-*.pt")) and workers:
            os.kill(workers[0], signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    proc.communicate(timeout=300)
    assert killed, "no checkpoint was saved while the workers ran"
    rerun = run_search(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="mnist-grid", storage=readable(storage))
    finished = [records.point(t) for t in study.trials if records.is_finished(t.state)]
    assert sorted(finished) == list(range(trials))
    assert not study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
