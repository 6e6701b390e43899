from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trainer import ACTIVATIONS, LOSSES, OPTIMIZERS, EpochRecord, Splits, TrainConfig, load_mnist, split, train
from trainer.stack import StackedMLP

FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "seconds")


def quick(**changes: object) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 32, "device": "cpu"}
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


def test_baseline_learns_well_above_chance(splits: Splits) -> None:
    result = train(quick(), splits)
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert result.val_accuracy > 0.8 and result.test_accuracy > 0.8
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert not result.diverged and not result.stopped
    assert result.parameter_count == 784 * 128 + 128 + 128 * 10 + 10


def test_history_records_every_figure(splits: Splits) -> None:
    record = train(quick(epochs=1), splits).history[0]
    assert tuple(record.to_dict()) == FIELDS
    for name in FIELDS[1:]:
        assert math.isfinite(getattr(record, name))
    for name in ("train_accuracy", "val_accuracy", "test_accuracy"):
        assert 0 <= getattr(record, name) <= 1
    assert record.seconds > 0


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_learns(splits: Splits, activation: str) -> None:
    lr = 1.0 if activation != "sigmoid" else 10.0
    assert train(quick(activation=activation, learning_rate=lr), splits).val_accuracy > 0.5


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_learns(splits: Splits, loss: str) -> None:
    lr = 10.0 if loss == "mse" else 1.0  # the squared error's gradients are small
    result = train(quick(loss=loss, learning_rate=lr, epochs=4), splits)
    assert result.val_accuracy > 0.5, result.history


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns(splits: Splits, optimizer: str) -> None:
    lr = {"adadelta": 1.0, "sgd": 0.05, "adam": 0.002}[optimizer]
    assert train(quick(optimizer=optimizer, learning_rate=lr), splits).val_accuracy > 0.8


def test_deep_and_linear_networks_train(splits: Splits) -> None:
    assert train(quick(hidden_layers=0), splits).val_accuracy > 0.5
    assert train(quick(hidden_layers=3, hidden_units=32), splits).val_accuracy > 0.5


def weight_norm(config: TrainConfig, splits: Splits) -> float:
    model = train(config, splits).model
    assert model is not None
    return sum(p.abs().sum().item() for name, p in model.named_parameters() if name.endswith("weight"))


def test_l1_and_weight_decay_shrink_the_weights(splits: Splits) -> None:
    plain = weight_norm(quick(), splits)
    assert weight_norm(quick(l1=1e-3), splits) < plain
    assert weight_norm(quick(weight_decay=0.1), splits) < plain


def test_dropout_changes_training_but_still_learns(splits: Splits) -> None:
    plain, dropped = train(quick(), splits), train(quick(dropout=0.5), splits)
    assert plain.history[0].train_loss != dropped.history[0].train_loss
    assert dropped.val_accuracy > 0.7


def test_same_seed_same_history_other_seed_other_history(splits: Splits) -> None:
    def figures(config: TrainConfig) -> list[tuple]:
        return [tuple(v for k, v in r.to_dict().items() if k != "seconds") for r in train(config, splits).history]

    assert figures(quick(dropout=0.2)) == figures(quick(dropout=0.2))
    assert figures(quick(seed=2)) != figures(quick())


def test_shorter_run_is_a_prefix_of_a_longer_one(splits: Splits) -> None:
    """Under one seed the schedule depends on the epoch alone: the grid's epochs points share runs."""
    short, long = train(quick(epochs=2), splits), train(quick(epochs=4), splits)
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k != "seconds"}  # noqa: E731
    assert [strip(r) for r in short.history] == [strip(r) for r in long.history[:2]]


def test_divergence_stops_the_run_without_a_crash(splits: Splits) -> None:
    result = train(quick(optimizer="sgd", learning_rate=1e6, epochs=5), splits)
    assert result.diverged
    assert len(result.history) < 5
    assert all(math.isfinite(r.train_loss) for r in result.history)
    assert result.to_dict()["diverged"] is True


def test_on_epoch_sees_each_record_and_can_stop(splits: Splits) -> None:
    seen: list[EpochRecord] = []

    def stop_after_two(record: EpochRecord) -> bool:
        seen.append(record)
        return record.epoch == 2

    result = train(quick(epochs=5), splits, on_epoch=stop_after_two)
    assert [r.epoch for r in seen] == [1, 2]
    assert result.stopped and len(result.history) == 2


def test_validation_zero_reports_the_test_set_as_validation(mnist_dir: Path) -> None:
    s = split(load_mnist(mnist_dir, "cpu", download=False), validation=0)
    record = train(quick(epochs=1), s).history[0]
    assert record.val_accuracy == record.test_accuracy


def test_last_partial_batch_is_trained(splits: Splits, monkeypatch: pytest.MonkeyPatch) -> None:
    """500 images in batches of 200: three steps, the last of 100 images."""
    batches: list[int] = []
    original = StackedMLP.loss_and_grad

    def counting(self: StackedMLP, x: torch.Tensor, *args: object, **kwargs: object):
        batches.append(x.shape[-2])  # x is [seeds, batch, 784]
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(StackedMLP, "loss_and_grad", counting)
    train(quick(batch_size=200, epochs=1), splits)
    assert batches == [200, 200, 100]
