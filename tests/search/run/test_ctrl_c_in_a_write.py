"""A Ctrl-C that lands while a group's checkpoint is written ends the run once the file is whole."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from search import app
from search.run.progress import Progress
from search.spec import StudySpec
from tests.search.run.test_checkpoint_runs import figures, finished
from tests.trainer.test_checkpoint import _CtrlCInside
from trainer.checkpoint import Checkpoint


def test_a_ctrl_c_inside_a_checkpoint_write_interrupts_the_run_and_the_rerun_resumes_its_file(
    make_spec: Callable[..., StudySpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Before, torch's writer turned the KeyboardInterrupt into a RuntimeError, the save was skipped
    as failed, and the study trained to ``done`` as if no Ctrl-C had been typed."""
    options = {"trials": 3, "max_epochs": 3}  # one group: three rates, 3 epochs
    whole, cut = make_spec("grid", study_name="whole", **options), make_spec("grid", study_name="cut", **options)
    assert app.run_study(whole, []) == 0
    save, saves = torch.save, []

    def typed_into_the_second_save(state: object, f: object) -> None:
        if isinstance(f, (str, os.PathLike)):  # a model's artifact, not a checkpoint
            return save(state, f)
        saves.append(state)
        return save(state, _CtrlCInside(f) if len(saves) == 2 else f)

    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr(torch, "save", typed_into_the_second_save)
        assert app.run_study(cut, []) == 130
    err = capsys.readouterr().err
    assert "interrupted: " in err and "resume with: " in err and "cannot write the checkpoint" not in err
    assert "no trial is left running" in err
    assert not finished(cut)
    [path] = (tmp_path / "studies-artifacts").glob("checkpoint-cut-*.pt")
    assert Checkpoint(path).load()["epoch"] == 2  # the save the Ctrl-C landed in, whole
    epochs: list[int] = []
    seen = Progress._epoch
    with monkeypatch.context() as m:
        m.setattr(Progress, "_epoch", lambda progress, event: (epochs.append(event["epoch"]), seen(progress, event)))
        assert app.run_study(cut, []) == 0
    assert epochs == [2, 3]  # the run's start at its saved epoch, then epoch 3: not the saved epochs told again
    expected, resumed = finished(whole), finished(cut)
    assert resumed.keys() == expected.keys() and len(resumed) == 3
    for point, trial in resumed.items():
        assert figures(trial) == figures(expected[point]) and trial.value == expected[point].value, point


def test_the_interrupted_summary_says_no_trial_is_left_running_only_when_none_is() -> None:
    assert app._still_running(0) == "no trial is left running"
    assert app._still_running(2) == (
        "2 trials of a worker that did not stop in time are left running: "
        "the rerun re-queues them once their heartbeat is stale"
    )
    assert app._still_running(1).startswith("1 trial of a worker that did not stop in time is left running")
