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
