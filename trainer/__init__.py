"""Build and train the fully connected MNIST network from seven parameters, fast, in memory.

The names below load their module (and torch) when first used: ``trainer.config`` and
``trainer.cli`` import without torch, so a command line's ``--help`` starts at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.lazy import lazy_names

if TYPE_CHECKING:
    from trainer.config import ACTIVATIONS, LOSSES, OPTIMIZERS, TrainConfig
    from trainer.data import MNIST, Splits, load_mnist, resolve_data_dir, split
    from trainer.errors import DataError, UsageError
    from trainer.loop import EpochRecord, RunResult, evaluate, resolve_device, train
    from trainer.model import build_model

_HOMES = {
    "trainer.config": ("ACTIVATIONS", "LOSSES", "OPTIMIZERS", "TrainConfig"),
    "trainer.data": ("MNIST", "Splits", "load_mnist", "resolve_data_dir", "split"),
    "trainer.errors": ("DataError", "UsageError"),
    "trainer.loop": ("EpochRecord", "RunResult", "evaluate", "resolve_device", "train"),
    "trainer.model": ("build_model",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "ACTIVATIONS",
    "DataError",
    "EpochRecord",
    "LOSSES",
    "MNIST",
    "OPTIMIZERS",
    "RunResult",
    "Splits",
    "TrainConfig",
    "UsageError",
    "build_model",
    "evaluate",
    "load_mnist",
    "resolve_data_dir",
    "resolve_device",
    "split",
    "train",
]


__getattr__ = lazy_names(__name__, _HOME)
