"""A point's retries: kills, interrupts and dead workers never use them; only its own failing training does."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import app, records
from search.run.worker import _points_handed_out, missing_points
from search.spec import StudySpec
from search.storage import MAX_RETRIES, open_store
from tests.search.conftest import fast_flags, run_search, start_search
from trainer.objective import Objective, TrialFailed


def test_a_point_failed_silently_any_number_of_times_is_still_owed(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'studies.db'}", direction="maximize")
    for _ in range(MAX_RETRIES + 3):  # a dead worker each time (kill -9 of the command, a dead machine)
        study.enqueue_trial({"x": 0}, user_attrs={"point": 0})
        study.tell(study.ask(), state=TrialState.FAIL)
    assert _points_handed_out(study) == ([0], 1)
    assert missing_points(study) == []


def test_a_stale_trial_is_queued_again_however_often_its_worker_died(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'studies.db'}", heartbeat=1)
    study = optuna.create_study(study_name="s", storage=store.storage, direction="maximize")
    study.enqueue_trial({"x": 0}, user_attrs={"point": 0})
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    frozen = study.trials[0]
    frozen.system_attrs["retry_history"] = list(range(MAX_RETRIES + 2))  # the fifth death of this point
    store.storage.get_heartbeat_stale_trial_callback()(study, frozen)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [records.point(t) for t in waiting] == [0]


def test_a_point_whose_own_training_fails_is_retried_then_named_and_the_run_is_not_done(
    make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_spec("grid", trials=4, max_epochs=1, workers=1)
    points = spec.points()
    assert points is not None
    failing = points[1]
    conclude = Objective.conclude

    def fail_point_1(self: Objective, trial: optuna.Trial, result: object) -> float:
        if trial.params == failing:
            raise TrialFailed("out of memory: CUDA out of memory (a test's)")
        return conclude(self, trial, result)  # type: ignore[arg-type]

    monkeypatch.setattr(Objective, "conclude", fail_point_1)
    assert app.run_study(spec, []) == 1
    err = capsys.readouterr().err
    assert "done:" not in err, err
    assert "point 1 (trial" in err and "out of memory" in err and f"failed {MAX_RETRIES} times" in err, err
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    tries = [t for t in study.trials if records.point(t) == 1]
    assert len(tries) == MAX_RETRIES and all(t.state == TrialState.FAIL for t in tries)
    finished = sorted(records.point(t) for t in study.trials if records.is_finished(t.state))
    assert finished == [0, 2, 3, 4]


def test_a_diverged_point_is_its_result_not_a_missing_point(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'studies.db'}", direction="maximize")
    study.enqueue_trial({"x": 0}, user_attrs={"point": 0})
    trial = study.ask()
    trial.set_user_attr(records.FAIL_REASON, "diverged: the loss of seed 1 became NaN or infinite in epoch 2")
    study.tell(trial, state=TrialState.FAIL)
    assert _points_handed_out(study) == ([], 1)
    assert missing_points(study) == []


@pytest.mark.slow  # five commands on real processes, four killed: about two minutes on two cores
def test_four_kills_of_the_command_then_a_rerun_finish_the_first_points(mnist_dir: Path, tmp_path: Path) -> None:
    """The issue's sequence: kill -9 of the whole command four times while its group trains, then run it again."""
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    args = ["grid", "--trials", "27", "--workers", "1", "--heartbeat", "1", "--seeds", "2", "--storage", storage]
    args += ["--max-epochs", "2", "--compile", "off", "--threads", "1", *fast_flags(mnist_dir)]
    for kill in range(4):
        proc = start_search(*args, cwd=tmp_path)
        deadline = time.monotonic() + 300
        study_running = False
        while proc.poll() is None and time.monotonic() < deadline and not study_running:
            time.sleep(0.1)
            study = _load(storage)
            study_running = study is not None and any(
                t.intermediate_values for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            )
        assert proc.poll() is None, f"kill {kill + 1}: the command ended before its group trained an epoch"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    rerun = run_search(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "done:" in rerun.stderr
    study = optuna.load_study(study_name="mnist-grid", storage=storage)
    finished = sorted(records.point(t) for t in study.trials if records.is_finished(t.state))
    assert finished == list(range(27))
    assert not study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))


def _load(storage: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name="mnist-grid", storage=storage)
    except KeyError:
        return None
