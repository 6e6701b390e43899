"""A group's run interrupted and resumed from its checkpoint against a run never interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainer.test_stack import MIXED
from trainer import Splits, TrainConfig
from trainer.checkpoint import Checkpoint
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


def test_a_checkpoint_of_other_configurations_is_refused(splits: Splits, tmp_path: Path) -> None:
    config = TrainConfig(hidden_units=16, batch_size=50, epochs=1, device="cpu")
    checkpoint = Checkpoint(tmp_path / "group.pt")
    checkpoint.save({"configs": [config.replace(seed=9).to_dict()]})
    with pytest.raises(ValueError, match="other configurations"):
        train_together([config], splits, checkpoint=checkpoint)


def _figures(record: EpochRecord) -> dict[str, float]:
    return {k: v for k, v in record.to_dict().items() if k != "seconds"}
