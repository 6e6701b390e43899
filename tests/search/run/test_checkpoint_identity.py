"""A checkpoint belongs to one study on one storage with one data; one that cannot be written or put back
costs its group nothing but time."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from search import app
from search.run import study as run_study
from search.run.progress import Progress
from search.spec import StudySpec
from tests.search.conftest import states
from trainer import checkpoint, loop


def test_a_checkpoint_names_the_storage_the_study_and_the_data(
    make_spec: Callable[..., StudySpec], tmp_path: Path
) -> None:
    spec = make_spec("grid", study_name="g")
    prefix = lambda s: run_study.checkpoint_folder(s, run_study.prepare(s)).prefix  # noqa: E731
    first = prefix(spec)
    assert prefix(spec) == first  # the same study, run again
    # Other data flags are refused by the study's identity; its checkpoints tell them apart all the same.
    assert run_study.checkpoint_folder(spec.replace(limit_train=150), run_study.prepare(spec)).prefix != first
    assert prefix(spec.replace(storage=f"sqlite:///{tmp_path / 'other.db'}")) != first
    optuna.delete_study(study_name="g", storage=spec.storage)
    assert prefix(spec) != first  # made again under its name: another study


def _interrupted(make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch) -> StudySpec:
    """A one-group grid study stopped by Ctrl-C in its second epoch, its checkpoint of epoch 1 kept."""
    spec = make_spec("grid", study_name="cut", trials=3, max_epochs=3)
    epoch = Progress._epoch

    def interrupt(progress: Progress, event: dict[str, Any]) -> None:
        if event["epoch"] == 2:
            raise KeyboardInterrupt
        epoch(progress, event)

    with monkeypatch.context() as m:
        m.setattr(Progress, "_epoch", interrupt)
        assert app.run_study(spec, []) == 130
    return spec


def test_a_checkpoint_that_cannot_be_put_back_is_removed_and_its_group_retrains(
    make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _interrupted(make_spec, monkeypatch)
    capsys.readouterr()

    def wrong_size(*args: Any) -> int:
        raise RuntimeError("The size of tensor a (3) must match the size of tensor b (7)")

    monkeypatch.setattr(loop, "_restore", wrong_size)
    assert app.run_study(spec, []) == 0
    err = capsys.readouterr().err
    assert err.count("cannot resume the checkpoint") == 1 and "Traceback" not in err
    counts = states(spec.storage, spec.name)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 3 and "WAITING" not in counts, counts


def test_a_checkpoint_that_cannot_be_written_costs_nothing(
    make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disk_full(**kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    # The checkpoints' files alone, not the models'.
    monkeypatch.setattr(checkpoint, "tempfile", types.SimpleNamespace(mkstemp=disk_full))
    spec = make_spec("grid", study_name="full", trials=3, max_epochs=2)
    assert app.run_study(spec, []) == 0
    err = capsys.readouterr().err
    assert err.count("cannot write the checkpoint") == 1 and "No space left" in err
    assert states(spec.storage, spec.name) == {"COMPLETE": 3}
