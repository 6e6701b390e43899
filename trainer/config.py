"""The one frozen dataclass that describes a training run."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from trainer.errors import UsageError

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu")
LOSSES = ("nll", "cross_entropy", "mse")
OPTIMIZERS = ("adadelta", "sgd", "adam")
MAX_EPOCHS = 25
MAX_HIDDEN_LAYERS = 10
MAX_HIDDEN_UNITS = 4096
MAX_THREADS = 1024  # CPU threads of a training process: more than any machine has is a mistake, not a plan
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """A network on MNIST and how to train it.

    The seven searched parameters come first; the rest default to "off" or to the
    classic PyTorch MNIST example. Every field is checked on construction and a bad
    value raises ``UsageError`` (a ``ValueError``) naming the value and what is accepted.
    """

    hidden_layers: int = 1
    hidden_units: int = 128
    activation: str = "relu"
    loss: str = "nll"
    learning_rate: float = 1.0
    epochs: int = 14
    batch_size: int = 64
    optimizer: str = "adadelta"
    # Decay per epoch of the StepLR schedule, as in pytorch/examples mnist.
    lr_decay: float = 0.7
    dropout: float = 0.0
    weight_decay: float = 0.0
    l1: float = 0.0
    seed: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_int("hidden_layers", self.hidden_layers, 0, MAX_HIDDEN_LAYERS)
        _check_int("hidden_units", self.hidden_units, 1, MAX_HIDDEN_UNITS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("batch_size", self.batch_size, 1, None)
        _check_int("seed", self.seed, 0, None)
        _check_float("learning_rate", self.learning_rate, positive=True)
        _check_float("lr_decay", self.lr_decay, positive=True)
        _check_float("weight_decay", self.weight_decay)
        _check_float("l1", self.l1)
        _check_float("dropout", self.dropout)
        if not self.dropout < 1:
            raise UsageError(f"dropout must be in [0, 1), but got dropout={self.dropout!r}.")
        if not isinstance(self.device, str) or not _DEVICE_PATTERN.match(self.device):
            raise UsageError(f"device must be one of auto, cpu, cuda, cuda:N, mps, but got device={self.device!r}.")

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _check_int(name: str, value: Any, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an integer, but got {name}={value!r}.")
    if value < low or (high is not None and value > high):
        accepted = f"{low}..{high}" if high is not None else f">= {low}"
        raise UsageError(f"{name} must be {accepted}, but got {name}={value!r}.")


def _check_float(name: str, value: Any, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, but got {name}={value!r}.")
    if positive and value <= 0:
        raise UsageError(f"{name} must be > 0, but got {name}={value!r}.")
    if value < 0:
        raise UsageError(f"{name} must be >= 0, but got {name}={value!r}.")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}, but got {name}={value!r}.")
