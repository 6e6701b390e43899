"""The search space, declared once: each parameter's grid values and distribution side by side."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainer import ACTIVATIONS, LOSSES, TrainConfig


@dataclass(frozen=True)
class Parameter:
    """A searched ``TrainConfig`` field: its reference grid and its random/TPE distribution."""

    name: str
    grid: tuple[Any, ...]
    distribution: BaseDistribution


SEVEN: tuple[Parameter, ...] = (
    Parameter("hidden_layers", (1, 3, 5), IntDistribution(1, 5)),
    Parameter("hidden_units", (64, 128, 256), IntDistribution(32, 512, log=True)),
    Parameter("activation", ("relu", "sigmoid", "tanh"), CategoricalDistribution(ACTIVATIONS)),
    Parameter("loss", ("nll", "cross_entropy", "mse"), CategoricalDistribution(LOSSES)),
    Parameter("learning_rate", (0.1, 1.0, 10.0), FloatDistribution(0.01, 10.0, log=True)),
    Parameter("epochs", (5, 14, 25), IntDistribution(1, 25)),
    Parameter("batch_size", (16, 64, 256), CategoricalDistribution((16, 32, 64, 128, 256))),
)
# Points that differ only in these can share one run (trainer.run_key).
TOGETHER = ("learning_rate", "epochs")
# Joins the space with --regularization; 0 (off) is the baseline and a grid value.
REGULARIZATION: tuple[Parameter, ...] = (
    Parameter("dropout", (0.0, 0.2, 0.5), FloatDistribution(0.0, 0.5)),
    Parameter("weight_decay", (0.0, 1e-4, 1e-2), FloatDistribution(0.0, 1e-2)),
)


def search_space(regularization: bool = False) -> tuple[Parameter, ...]:
    return SEVEN + REGULARIZATION if regularization else SEVEN


def distributions(space: tuple[Parameter, ...]) -> dict[str, BaseDistribution]:
    return {p.name: p.distribution for p in space}


def grid_points(space: tuple[Parameter, ...], seed: int) -> list[dict[str, Any]]:
    """Every combination of grid values, in a seeded random order of the other parameters'
    combinations, each followed by all its learning rates and epochs.

    A shuffled order makes any prefix a spread-out sample of the grid, so that
    ``--trials 50`` on the grid already says something about every parameter; keeping
    the points that differ only in learning rate and epochs together lets them share
    one run (``trainer.run_key``).
    """
    names = [p.name for p in space]
    outer = [p for p in space if p.name not in TOGETHER]
    inner = [p for p in space if p.name in TOGETHER]
    heads = list(itertools.product(*(p.grid for p in outer)))
    random.Random(seed).shuffle(heads)
    points = []
    for head in heads:
        for tail in itertools.product(*(p.grid for p in inner)):
            values = dict(zip([p.name for p in outer + inner], head + tail, strict=True))
            points.append({name: values[name] for name in names})
    return points


def oat_points(space: tuple[Parameter, ...], baseline: TrainConfig) -> list[dict[str, Any]]:
    """The baseline, then each parameter moved alone to each of its other grid values.

    The learning rate and epochs come first, next to the baseline, whose run they share.
    """
    base = {p.name: getattr(baseline, p.name) for p in space}
    points = [base]
    for p in sorted(space, key=lambda p: p.name not in TOGETHER):
        points += [{**base, p.name: value} for value in p.grid if value != base[p.name]]
    return points
