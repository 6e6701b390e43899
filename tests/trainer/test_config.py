from __future__ import annotations

import dataclasses

import pytest

from trainer import TrainConfig


def test_defaults_are_the_baseline() -> None:
    c = TrainConfig()
    assert (c.hidden_layers, c.hidden_units, c.activation, c.loss) == (1, 128, "relu", "nll")
    assert (c.optimizer, c.learning_rate, c.epochs, c.batch_size, c.seed) == ("adadelta", 1.0, 14, 64, 1)
    assert (c.dropout, c.weight_decay, c.l1) == (0.0, 0.0, 0.0)


def test_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "quoted"),
    [
        ({"activation": "swish"}, "'swish'"),
        ({"loss": "hinge"}, "'hinge'"),
        ({"optimizer": "rmsprop"}, "'rmsprop'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"learning_rate": -0.1}, "learning_rate=-0.1"),
        ({"learning_rate": float("nan")}, "learning_rate=nan"),
        ({"hidden_layers": -1}, "hidden_layers=-1"),
        ({"hidden_layers": 11}, "hidden_layers=11"),
        ({"hidden_units": 0}, "hidden_units=0"),
        ({"epochs": 0}, "epochs=0"),
        ({"epochs": 26}, "epochs=26"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"weight_decay": -1.0}, "weight_decay=-1.0"),
        ({"l1": -0.5}, "l1=-0.5"),
        ({"device": "tpu"}, "'tpu'"),
        ({"epochs": 2.5}, "epochs=2.5"),
    ],
)
def test_bad_values_name_the_value_and_what_is_accepted(changes: dict, quoted: str) -> None:
    with pytest.raises(ValueError) as info:
        TrainConfig(**changes)
    message = str(info.value)
    assert quoted in message
    assert "must be" in message


def test_replace_validates() -> None:
    assert TrainConfig().replace(epochs=3).epochs == 3
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig().replace(epochs=-3)


def test_zero_hidden_layers_is_a_linear_model() -> None:
    from trainer import build_model

    model = build_model(TrainConfig(hidden_layers=0))
    assert sum(p.numel() for p in model.parameters()) == 784 * 10 + 10
