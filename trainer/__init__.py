"""Build and train the fully connected MNIST network from seven parameters, fast, in memory."""

from trainer.config import ACTIVATIONS, LOSSES, OPTIMIZERS, TrainConfig
from trainer.data import MNIST, DataError, Splits, load_mnist, resolve_data_dir, split
from trainer.errors import UsageError
from trainer.loop import EpochRecord, RunResult, evaluate, resolve_device, train
from trainer.model import build_model

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MNIST",
    "OPTIMIZERS",
    "DataError",
    "EpochRecord",
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
