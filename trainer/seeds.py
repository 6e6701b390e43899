"""One configuration under several training seeds: the configurations, and the spread of their results."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.config import TrainConfig
from trainer.errors import UsageError
from trainer.loop import RunResult


def seed_configs(config: TrainConfig, k: int) -> list[TrainConfig]:
    """``config`` under the ``k`` seeds ``config.seed, config.seed + 1, ...``: one group (``train_together``)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"seeds must be an integer >= 1, but got seeds={k!r}.")
    return [config.replace(seed=config.seed + i) for i in range(k)]


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (0 for one value) and range of a figure over seeds."""

    mean: float
    std: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        array = np.asarray(values, dtype=float)
        if not len(array):
            return cls(float("nan"), float("nan"), float("nan"), float("nan"), 0)
        std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
        return cls(float(array.mean()), std, float(array.min()), float(array.max()), len(array))

    def __str__(self) -> str:
        return f"{self.mean:.4f} +- {self.std:.4f} ({self.low:.4f}..{self.high:.4f}, {self.n} seeds)"

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def seed_summary(results: Sequence[RunResult]) -> dict[str, object]:
    """The spread of validation and test accuracy over the seeds' runs that did not diverge.

    Returns ``seeds`` (each run's seed), ``val_accuracy`` and ``test_accuracy`` (``Spread``)
    and ``diverged`` (the seeds whose runs diverged).
    """
    kept = [r for r in results if not r.diverged and r.history]
    return {
        "seeds": [r.config.seed for r in results],
        "val_accuracy": Spread.of([r.val_accuracy for r in kept]),
        "test_accuracy": Spread.of([r.test_accuracy for r in kept]),
        "diverged": [r.config.seed for r in results if r not in kept],
    }
