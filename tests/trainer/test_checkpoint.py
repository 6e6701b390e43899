"""A group's run interrupted and resumed from its checkpoint against a run never interrupted."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from tests.trainer.test_stack import MIXED
from trainer import Splits, TrainConfig
from trainer.checkpoint import Checkpoint, CheckpointError, CheckpointFolder
from trainer.interrupts import held_interrupts
from trainer.loop import EpochRecord, train_together


class Stop(Exception):
    """Stands for Ctrl-C or a killed worker in the middle of epoch 3."""


def test_an_interrupted_group_resumes_from_its_checkpoint_bit_for_bit(splits: Splits, tmp_path: Path) -> None:
    base = TrainConfig(hidden_layers=2, hidden_units=20, batch_size=30, epochs=2, device="cpu")
    configs = [base.replace(**m) for m in MIXED]  # 1 to 3 epochs, four seeds, dropout
    whole = train_together(configs, splits)

    def stop_in_epoch_3(record: EpochRecord) -> None:
        if record.epoch == 3:
            raise Stop

    checkpoint = Checkpoint(tmp_path / "group.pt")
    with pytest.raises(Stop):
        train_together(configs, splits, [stop_in_epoch_3] + [None] * (len(configs) - 1), checkpoint=checkpoint)
    assert checkpoint.load()["epoch"] == 2
    done: list[int] = []
    resumed = train_together(configs, splits, on_done=lambda i, result: done.append(i), checkpoint=checkpoint)
    for a, b in zip(whole, resumed, strict=True):
        assert a.config == b.config
        assert [_figures(r) for r in a.history] == [_figures(r) for r in b.history], a.config
        for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.equal(p, q), a.config
    assert done == [i for i, c in enumerate(configs) if c.epochs == 3]  # the others left before the checkpoint
    assert not checkpoint.path.exists()  # a finished run leaves nothing to resume


def test_a_ctrl_c_at_an_epochs_report_keeps_that_epoch(splits: Splits, tmp_path: Path) -> None:
    """A Ctrl-C typed when an epoch's progress line shows (its callback runs) waits for the save:
    the rerun resumes after that epoch, bit for bit, instead of training it again."""
    base = TrainConfig(hidden_layers=2, hidden_units=20, batch_size=30, epochs=3, device="cpu")
    configs = [base.replace(seed=s) for s in (1, 2)]
    whole = train_together(configs, splits)

    def ctrl_c_at_epoch_2(record: EpochRecord) -> None:
        if record.epoch == 2:
            signal.raise_signal(signal.SIGINT)

    checkpoint = Checkpoint(tmp_path / "group.pt")
    with pytest.raises(KeyboardInterrupt):
        train_together(configs, splits, [ctrl_c_at_epoch_2, None], checkpoint=checkpoint)
    assert checkpoint.load()["epoch"] == 2  # was 1: the interrupt came before the save
    resumed = train_together(configs, splits, checkpoint=checkpoint)
    for a, b in zip(whole, resumed, strict=True):
        assert [_figures(r) for r in a.history] == [_figures(r) for r in b.history]


def test_a_checkpoint_of_other_configurations_is_refused(splits: Splits, tmp_path: Path) -> None:
    config = TrainConfig(hidden_units=16, batch_size=50, epochs=1, device="cpu")
    checkpoint = Checkpoint(tmp_path / "group.pt")
    checkpoint.save({"configs": [config.replace(seed=9).to_dict()]})
    with pytest.raises(ValueError, match="other configurations"):
        train_together([config], splits, checkpoint=checkpoint)


def test_a_rerun_of_part_of_a_run_finds_the_whole_runs_checkpoint(splits: Splits, tmp_path: Path) -> None:
    base = TrainConfig(hidden_units=16, batch_size=50, epochs=2, device="cpu")
    configs = [base.replace(learning_rate=r, epochs=e) for r, e in ((0.1, 1), (0.1, 3), (1.0, 3))]
    folder = CheckpointFolder(tmp_path, "my study/1")
    checkpoint, full = folder.find(configs)
    assert full == configs and checkpoint.path == folder.path(configs[::-1])  # the order does not matter
    checkpoint.save(_state_of(configs, splits, tmp_path))
    # The 1-epoch configuration was told before the interrupt: the rerun asks for the other two.
    resumed, again = folder.find(configs[1:])
    assert resumed.path == checkpoint.path and again == configs
    # Another run of the same network (other rates) and another study keep their own files.
    other = [base.replace(learning_rate=0.5)]
    fresh, alone = folder.find(other)
    assert alone == other and fresh.path != checkpoint.path and checkpoint.path.exists()
    assert CheckpointFolder(tmp_path, "my study_1").path(configs) != checkpoint.path


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_a_damaged_or_mismatched_checkpoint_is_removed_with_one_line(
    splits: Splits, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    configs = [TrainConfig(hidden_units=16, batch_size=50, epochs=2, device="cpu")]
    folder = CheckpointFolder(tmp_path, "study")
    path = folder.path(configs)
    if content is None:  # a whole checkpoint, of other configurations than its name says
        Checkpoint(path).save(_state_of([configs[0].replace(seed=9)], splits, tmp_path))
    else:
        path.write_bytes(content)
    checkpoint, full = folder.find(configs)
    assert full == configs and checkpoint.path == path and not path.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    assert len(train_together(configs, splits, checkpoint=checkpoint)) == 1  # trains from epoch 1


def test_a_save_cut_short_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = Checkpoint(tmp_path / "group.pt")
    checkpoint.save({"epoch": 1})

    def killed(state: object, f: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"epoch": 2})
    monkeypatch.undo()
    assert checkpoint.load() == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["group.pt"]


class _CtrlCInside:
    """A file whose second write first sends this process SIGINT, as a Ctrl-C typed while torch writes it."""

    def __init__(self, f: object) -> None:
        self._f, self.writes = f, 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return self._f.write(data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._f, name)


def test_a_ctrl_c_inside_a_checkpoint_write_stops_the_run_once_the_file_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raised inside torch's writer, the KeyboardInterrupt came out as a RuntimeError ("unexpected
    pos"), which the save took for a failed write: the run trained on as if no Ctrl-C was typed."""
    checkpoint = Checkpoint(tmp_path / "group.pt")
    state = {"epoch": 2, "param": torch.arange(300_000, dtype=torch.float32), "a": torch.ones(300_000)}
    save, files = torch.save, []

    def typed_into(state: object, f: object) -> None:
        files.append(_CtrlCInside(f))
        save(state, files[-1])

    monkeypatch.setattr(torch, "save", typed_into)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(state)
    monkeypatch.undo()
    assert files[0].writes > 2  # the signal came in the middle of the write
    assert capsys.readouterr().err == ""  # not taken for a failed save
    saved = checkpoint.load()
    assert saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in ("param", "a"))
    assert [p.name for p in tmp_path.iterdir()] == ["group.pt"]


def test_held_interrupts_hands_a_sigterm_to_the_handler_before_even_when_the_block_raises() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(OSError, match="disk full"), held_interrupts():
            with held_interrupts():  # nested: the inner block hands it to the outer
                os.kill(os.getpid(), signal.SIGTERM)
                assert seen == []
            assert seen == []
            raise OSError("disk full")
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def _state_of(configs: list[TrainConfig], splits: Splits, tmp_path: Path) -> dict:
    """A real checkpoint of ``configs`` (one of them trains 2 epochs or more) after their first epoch."""
    saved = Checkpoint(tmp_path / "saved.pt")

    def stop_in_epoch_2(record: EpochRecord) -> None:
        if record.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train_together(configs, splits, [stop_in_epoch_2] * len(configs), checkpoint=saved)
    state = saved.load()
    saved.clear()
    return state


def _figures(record: EpochRecord) -> dict[str, float]:
    return {k: v for k, v in record.to_dict().items() if k != "seconds"}


def test_a_checkpoint_that_cannot_be_written_is_skipped_with_one_line(
    splits: Splits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = [TrainConfig(hidden_units=16, batch_size=50, epochs=3, device="cpu")]
    whole = train_together(configs, splits)
    checkpoint = Checkpoint(tmp_path / "group.pt")

    def disk_full(state: object, f: object) -> None:
        f.write(b"part")  # type: ignore[attr-defined]
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", disk_full)
    resumed = train_together(configs, splits, checkpoint=checkpoint)
    assert [_figures(r) for r in resumed[0].history] == [_figures(r) for r in whole[0].history]  # training went on
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the checkpoint" in err and "file write failed" in err
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_a_checkpoint_of_another_identity_is_ignored_with_one_line_and_kept(
    splits: Splits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = [TrainConfig(hidden_units=16, batch_size=50, epochs=2, device="cpu")]
    theirs = CheckpointFolder(tmp_path, "study", identity="database A")
    Checkpoint(theirs.path(configs)).save(_state_of(configs, splits, tmp_path))
    ours = CheckpointFolder(tmp_path, "study", identity="database B")
    for _ in range(2):
        checkpoint, full = ours.find(configs)
        assert checkpoint.path != theirs.path(configs) and full == configs
    assert theirs.path(configs).exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ignoring the checkpoint" in err  # said once per file


def test_a_checkpoint_past_its_runs_end_is_removed_with_one_line(
    splits: Splits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = [TrainConfig(hidden_units=16, batch_size=50, epochs=2, device="cpu")]
    folder = CheckpointFolder(tmp_path, "study")
    Checkpoint(folder.path(configs)).save({**_state_of(configs, splits, tmp_path), "epoch": 99})
    checkpoint, _ = folder.find(configs)
    assert not checkpoint.path.exists() and "ignoring the unreadable or mismatched" in capsys.readouterr().err


def test_a_checkpoint_that_cannot_be_put_back_raises_checkpoint_error(splits: Splits, tmp_path: Path) -> None:
    configs = [TrainConfig(hidden_units=16, batch_size=50, epochs=2, device="cpu")]
    checkpoint = Checkpoint(tmp_path / "group.pt")
    checkpoint.save({**_state_of(configs, splits, tmp_path), "param": torch.zeros(3)})  # a wrong-size tensor
    with pytest.raises(CheckpointError):
        train_together(configs, splits, checkpoint=checkpoint)


def test_the_parts_of_a_group_saved_by_several_workers_are_all_found(splits: Splits, tmp_path: Path) -> None:
    base = TrainConfig(hidden_units=16, batch_size=50, epochs=2, device="cpu")
    configs = [base.replace(learning_rate=r) for r in (0.1, 0.5, 1.0)]
    folder = CheckpointFolder(tmp_path, "study")
    first, second = configs[:1], configs[1:2]
    for part in (first, second):
        Checkpoint(folder.path(part)).save(_state_of(part, splits, tmp_path))
    runs = folder.runs(configs)
    assert [part for _, part in runs] == sorted([first, second], key=lambda p: folder.path(p).name) + [configs[2:]]
    assert folder.resumes(configs[1:]) and not folder.resumes(configs[2:])
