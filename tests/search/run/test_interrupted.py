"""A grid study stopped by Ctrl-C while a group trains: its interrupted trials keep their points."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from optuna_dashboard._note import get_note_from_system_attrs  # the note as the dashboard reads it

from search import records
from search.analysis.note import study_note
from tests.conftest import write_mnist
from tests.search.conftest import FILE_STORAGES, fast_flags, file_url, readable, start_search


def _training(storage: str, name: str) -> bool:
    """A trial of the study has reported an epoch and is still running."""
    try:
        study = optuna.load_study(study_name=name, storage=readable(storage))
    except (KeyError, ValueError):  # not made yet (a log not there yet reads as no storage)
        return False
    return any(t.intermediate_values for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


@pytest.mark.parametrize("kind", FILE_STORAGES)
def test_sigint_while_a_group_trains_leaves_every_interrupted_trial_with_its_parameters(
    tmp_path: Path, kind: str
) -> None:
    storage = file_url(kind, tmp_path)
    # Enough images that the group trains for seconds: the signal lands while it trains, also under load.
    data = write_mnist(tmp_path / "data" / "MNIST" / "raw", n_train=4_200, n_test=200).parents[1]
    args = ["grid", "--storage", storage, "--study-name", "cut", "--trials", "9", "--max-epochs", "14"]
    proc = start_search(*args, "--workers", "1", *fast_flags(data), "--limit-train", "4000", cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not _training(storage, "cut") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    study = optuna.load_study(study_name="cut", storage=readable(storage))
    interrupted = [t for t in study.trials if records.is_interrupted(t)]
    assert interrupted, err
    notes = study._storage.get_study_system_attrs(study._study_id)  # where optuna-dashboard keeps them
    for trial in interrupted:
        assert trial.params == records.fixed_params(trial), trial.number
        note = get_note_from_system_attrs(notes, trial._trial_id)["body"]
        assert note.startswith("**interrupted**"), note
    assert "re-queued" in study_note(study) and "not failures" in study_note(study)


@pytest.mark.parametrize(("kind", "workers"), [("tpe", "1"), ("grid", "2")])
def test_every_ctrl_c_is_said_and_the_counts_and_resume_line_stay_last(tmp_path: Path, kind: str, workers: str) -> None:
    """Ctrl-C after Ctrl-C until the command ends: the first is said at once (closing the running trials
    of two worker processes takes many seconds), and none cuts the closing lines."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    data = write_mnist(tmp_path / "data" / "MNIST" / "raw", n_train=4_200, n_test=200).parents[1]
    args = [kind, "--storage", storage, "--study-name", "cut", "--trials", "20", "--max-epochs", "14"]
    proc = start_search(*args, "--workers", workers, *fast_flags(data), "--limit-train", "4000", cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not _training(storage, "cut") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    _, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert lines[-2].startswith("this run: "), err
    assert lines[-1].startswith("interrupted: study 'cut': ") and f"resume with: python -m search {kind}" in lines[-1]
    said = [i for i, line in enumerate(lines) if line.startswith("stopping")]
    assert len(said) == 1 and lines[said[0]].startswith("stopping: closing "), err
