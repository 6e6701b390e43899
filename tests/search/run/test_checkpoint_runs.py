"""A grid study interrupted in the middle of a shared run resumes it from its checkpoint, bit for bit."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from search import app, records
from search.run import study as run_study
from search.run import worker as runner
from search.run.progress import Progress
from search.spec import StudySpec
from tests.conftest import write_mnist
from tests.search.conftest import fast_flags, run_search, start_search
from trainer import TrainConfig, loop
from trainer.checkpoint import Checkpoint, CheckpointFolder

STOP_EPOCH = 6  # the epochs=5 points of the group are told, the epochs=6 ones are still training


class Watch:
    """Keeps each finished trial's first-seed model, and where resumed runs started."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.models: dict[tuple[str, tuple], dict[str, torch.Tensor]] = {}
        self.resumed: list[int] = []
        record, restore = runner.record_trial, loop._restore

        def record_trial(trial: optuna.Trial, result: Any, store: Any) -> None:
            point = tuple(sorted(trial.params.items()))
            self.models[trial.study.study_name, point] = {k: v.clone() for k, v in result.model.state_dict().items()}
            record(trial, result, store)

        def spy_restore(state: dict[str, Any], *args: Any) -> int:
            self.resumed.append(restore(state, *args))
            return self.resumed[-1]

        monkeypatch.setattr(runner, "record_trial", record_trial)
        monkeypatch.setattr(loop, "_restore", spy_restore)


def finished(spec: StudySpec) -> dict[tuple, optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    return {tuple(sorted(t.params.items())): t for t in study.trials if t.state.name == "COMPLETE"}


def figures(trial: optuna.trial.FrozenTrial) -> list[list[dict[str, float]]]:
    return [[{k: v for k, v in r.items() if k != "seconds"} for r in h] for h in records.histories(trial)]


def test_an_interrupted_shared_run_resumes_and_equals_an_uninterrupted_one(
    make_spec: Callable[..., StudySpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = Watch(monkeypatch)
    options = {"trials": 6, "seeds": 2, "max_epochs": STOP_EPOCH}  # one group: 3 rates x epochs 5 and 6
    whole, cut = make_spec("grid", study_name="whole", **options), make_spec("grid", study_name="cut", **options)
    assert app.run_study(whole, []) == 0

    epoch = Progress._epoch

    def interrupt(progress: Progress, event: dict[str, Any]) -> None:
        if event["epoch"] == STOP_EPOCH:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the group's sixth epoch
        epoch(progress, event)

    with monkeypatch.context() as m:
        m.setattr(Progress, "_epoch", interrupt)
        assert app.run_study(cut, []) == 130
    artifacts = tmp_path / "studies-artifacts"
    told = finished(cut)
    assert told and all(dict(p)["epochs"] < STOP_EPOCH for p in told)  # some points were told before
    assert len(list(artifacts.glob("checkpoint-cut-*.pt"))) == 1

    assert app.run_study(cut, []) == 0
    assert watch.resumed == [STOP_EPOCH - 1]  # the rerun went on after the saved epoch, not from epoch 1
    assert not list(artifacts.glob("checkpoint-*")) and not list(artifacts.glob(".checkpoint-*"))
    expected, resumed = finished(whole), finished(cut)
    assert resumed.keys() == expected.keys() and len(resumed) == 6
    for point, trial in resumed.items():
        twin = expected[point]
        assert figures(trial) == figures(twin), point
        assert records.seed_values(trial) == records.seed_values(twin)
        assert trial.value == twin.value
        assert trial.intermediate_values == twin.intermediate_values  # every epoch reported, resumed ones too
        model, twin_model = watch.models["cut", point], watch.models["whole", point]
        assert all(torch.equal(model[k], twin_model[k]) for k in twin_model), point


def test_sampler_trials_keep_no_checkpoint_and_a_finished_study_leaves_none(
    make_spec: Callable[..., StudySpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec("random", trials=1, pruner="none")
    folder = run_study.checkpoint_folder(spec, run_study.prepare(spec))
    stale = folder.folder / f"{folder.prefix}-0-0.pt"  # a group told just before an interrupt left it
    stale.write_bytes(b"")
    killed = folder.folder / f".{stale.name}.x1y2.partial"  # a worker killed while it saved
    killed.write_bytes(b"half")
    other_spec = spec.replace(study_name="other")
    other = run_study.checkpoint_folder(other_spec, run_study.prepare(other_spec)).path([TrainConfig()])
    other.write_bytes(b"")
    asked: list[object] = []
    monkeypatch.setattr(CheckpointFolder, "runs", lambda self, configs: asked.append(configs))
    assert app.run_study(spec, []) == 0
    assert asked == []  # a sampler's trial is never asked again after an interrupt: nothing to resume
    assert not stale.exists() and not killed.exists() and other.exists()  # another study's checkpoints are its own


@pytest.mark.slow  # a minute on two cores: the command line twice, an uninterrupted study once
def test_ctrl_c_in_the_middle_of_a_group_resumes_it(make_spec: Callable[..., StudySpec], tmp_path: Path) -> None:
    """The command line, stopped by a real SIGINT once its group saved epoch 6 of 14.

    On 2,000 images, so that an epoch takes a good part of a second: on 200 the last eight
    epochs could pass between two looks at the checkpoint, and the run end before the signal.
    """
    data = write_mnist(tmp_path / "data" / "MNIST" / "raw", n_train=2_100, n_test=100).parents[1]
    # One group: 3 rates x epochs 5 and 14.
    options = {"trials": 6, "seeds": 2, "max_epochs": 14, "data_dir": str(data), "limit_train": 2000}
    whole, cut = make_spec("grid", study_name="whole", **options), make_spec("grid", study_name="cut", **options)
    assert app.run_study(whole, []) == 0
    args = ["grid", "--storage", cut.storage, "--study-name", "cut", "--trials", "6", "--seeds", "2", "--workers", "1"]
    args += ["--max-epochs", "14", *fast_flags(data), "--limit-train", "2000"]
    folder = run_study.checkpoint_folder(cut, run_study.prepare(cut))
    proc = start_search(*args, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while _saved_epoch(folder) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert 6 <= _saved_epoch(folder) < 14
    result = run_search(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list(folder.folder.glob("*checkpoint-*"))
    expected, resumed = finished(whole), finished(cut)
    assert resumed.keys() == expected.keys() and len(resumed) == 6
    for point, trial in resumed.items():
        assert figures(trial) == figures(expected[point]), point
        assert trial.intermediate_values == expected[point].intermediate_values


def _saved_epoch(folder: CheckpointFolder) -> int:
    """The epoch of the study's checkpoint (0 while there is none)."""
    for path in folder.folder.glob(f"{folder.prefix}-*.pt"):
        with contextlib.suppress(FileNotFoundError):  # removed as the run ends
            return Checkpoint(path).load()["epoch"]
    return 0
