"""A stopped worker (SIGSTOP, Ctrl-Z, a paused machine): the others wait and say so; when it wakes it drops
what was taken from it and goes on."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from search import records, storage
from search.run.groups import Heartbeats, run_group, waiting_group
from search.run.interrupts import NONE
from search.run.study import prepare
from search.space import point_key
from search.spec import StudySpec
from search.storage import StudyLock, open_store
from tests.conftest import write_mnist
from tests.search.conftest import fast_flags, start_search
from trainer import TrainConfig, load_mnist, split
from trainer.checkpoint import CheckpointFolder
from trainer.objective import GroupProgress, Objective


def _group(spec: StudySpec) -> tuple[optuna.Study, list[int]]:
    """The study with its first group's points waiting; their indexes."""
    study = prepare(spec)
    points = spec.points()
    assert points is not None
    group = [i for i, p in enumerate(points) if point_key(p) == point_key(points[0])]
    for i in group:
        study.enqueue_trial(points[i], user_attrs={records.POINT: i})
    return study, group


def test_a_worker_whose_trials_were_taken_while_it_was_stopped_drops_them_with_one_line(
    make_spec: Callable[..., StudySpec], tmp_path: Path
) -> None:
    spec = make_spec("grid", max_epochs=2)
    study, group = _group(spec)

    def taken_over(progress: GroupProgress) -> None:
        # What another worker does to a worker stopped past its heartbeat: fail its trials, queue their points.
        if progress.epoch == 2:  # after the first epoch's checkpoint
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                study.enqueue_trial(records.fixed_params(trial), user_attrs={records.POINT: records.point(trial)})

    splits = split(load_mnist(spec.data_dir, "cpu", False), spec.validation, spec.limit_train, spec.limit_test)
    folder = CheckpointFolder(tmp_path / "checkpoints", spec.name)
    base = TrainConfig(seed=spec.seed, device="cpu")
    objective = Objective(base, splits, spec.distributions, on_progress=taken_over, checkpoints=folder)
    claimed = waiting_group(study, lambda point: point_key(point), len(group))
    notes: list[str] = []
    told: list[optuna.trial.FrozenTrial] = []
    run_group(study, objective, claimed, lambda: None, NONE, told.append, lambda s, t: None, note=notes.append)
    assert not told
    assert len(notes) == 1 and "dropped that work and went on" in notes[0], notes
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert sorted(records.point(t) for t in waiting) == group  # each point queued once, by the other worker
    assert list(folder.folder.glob("checkpoint-*.pt"))  # kept for the worker that runs them again


def _running(tmp_path: Path, trials: int) -> tuple[optuna.Study, list[int], sqlalchemy.Engine]:
    store = open_store(f"sqlite:///{tmp_path / 'studies.db'}", heartbeat=1)
    study = optuna.create_study(study_name="s", storage=store.storage, direction="maximize")
    with pytest.warns(UserWarning, match="Heartbeat"):
        ids = [study.ask()._trial_id for _ in range(trials)]
    return study, ids, store.storage.engine


def test_a_groups_heartbeat_is_one_transaction_per_beat(tmp_path: Path) -> None:
    study, ids, engine = _running(tmp_path, 27)
    commits = [0]
    sqlalchemy.event.listen(engine, "commit", lambda conn: commits.__setitem__(0, commits[0] + 1))
    beat = threading.Event()
    with Heartbeats(study, ids):
        beat.wait(2.5)  # the first beat and about two more
    assert 1 <= commits[0] <= 4, commits  # one per beat, not one per trial per beat (27 each)
    stale = study._storage._get_stale_trial_ids(study._study_id)
    assert stale == []


def test_a_heartbeat_that_finds_the_write_lock_held_says_so_once_and_goes_on(tmp_path: Path) -> None:
    study, ids, _ = _running(tmp_path, 3)
    notes: list[str] = []
    heartbeats = Heartbeats(study, ids, note=notes.append)
    holder = sqlite3.connect(tmp_path / "studies.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a stopped process inside its write
    heartbeats.beat_once()
    heartbeats.beat_once()
    assert len(notes) == 1 and "another process holds its write lock" in notes[0], notes
    holder.execute("ROLLBACK")
    heartbeats.beat_once()
    assert len(notes) == 2 and "free again" in notes[1], notes


def test_a_worker_waiting_for_the_studys_lock_says_so_and_takes_it_when_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(storage, "LOCK_PATIENCE_SECONDS", 0.2)
    db = tmp_path / "studies.db"
    open_store(f"sqlite:///{db}")
    lock = StudyLock(f"sqlite:///{db}", "s")
    with open(f"{db}.lock", "a") as held:  # another process's claim, stopped
        fcntl.flock(held, fcntl.LOCK_EX)
        taker = threading.Thread(target=lock.acquire)
        taker.start()
        taker.join(2.0)
        assert taker.is_alive()  # it keeps waiting
        fcntl.flock(held, fcntl.LOCK_UN)
    taker.join(10)
    assert lock.held
    lock.release()
    err = capsys.readouterr().err
    assert err.count("waiting for the study's lock") == 1, err


def _workers(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.mark.slow  # two real workers, one stopped past its heartbeat: minutes on a loaded two-core machine
def test_a_worker_stopped_past_its_heartbeat_and_continued_ends_nothing(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    data = write_mnist(tmp_path / "data" / "MNIST" / "raw", n_train=4_200, n_test=200).parents[1]
    args = ["grid", "--storage", storage, "--trials", "27", "--workers", "2", "--heartbeat", "1"]
    args += ["--max-epochs", "4", "--compile", "off", *fast_flags(data), "--limit-train", "4000"]
    proc = start_search(*args, cwd=tmp_path)
    deadline, stopped = time.monotonic() + 600, None
    while proc.poll() is None and stopped is None and time.monotonic() < deadline:
        time.sleep(0.1)
        study = _study(storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if study else []
        workers = _workers(proc.pid)
        if len(workers) == 2 and any(t.intermediate_values for t in running):
            os.kill(workers[0], signal.SIGSTOP)
            stopped = workers[0]
    assert stopped is not None, "no worker was training"
    held = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    # Until the other worker has failed the stopped one's trials as stale (or the study ended without them).
    while proc.poll() is None and time.monotonic() < deadline:
        now = {t.number: t.state for t in optuna.load_study(study_name="mnist-grid", storage=storage).trials}
        if any(now[n] == TrialState.FAIL for n in held):
            break
        time.sleep(0.2)
    os.kill(stopped, signal.SIGCONT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "done:" in err, err
    study = optuna.load_study(study_name="mnist-grid", storage=storage)
    finished = sorted(records.point(t) for t in study.trials if records.is_finished(t.state))
    assert finished == list(range(27))


def _study(storage: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name="mnist-grid", storage=storage)
    except KeyError:
        return None
