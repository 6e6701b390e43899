"""The search space, declared once: each parameter's grid values and distribution side by side."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainer.config import ACTIVATIONS, LOSSES, TrainConfig


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
# Joins the space with --regularization; 0 (off) is the baseline and a grid value. Weight decay is L2;
# L1 adds l1 * sign(w) to each weight's gradient: on 10,000 images in 4 epochs 1e-5 cost the baseline
# 0.001 of validation accuracy, 1e-4 0.005, 1e-3 0.045, so its grid spans the mild end.
REGULARIZATION: tuple[Parameter, ...] = (
    Parameter("dropout", (0.0, 0.2, 0.5), FloatDistribution(0.0, 0.5)),
    Parameter("weight_decay", (0.0, 1e-4, 1e-2), FloatDistribution(0.0, 1e-2)),
    Parameter("l1", (0.0, 1e-5, 1e-4), FloatDistribution(0.0, 1e-3)),
)


# The grid's groups are handed out longest first within each block of this many (see grid_points).
ROUND = 27


def search_space(regularization: bool = False, max_epochs: int | None = None) -> tuple[Parameter, ...]:
    """The seven parameters (and regularization's three); ``max_epochs`` caps the epochs.

    Under the cap, grid values above it become it (5, 14, 25 under 10 are 5, 10) and the
    distribution's high end is the cap.
    """
    space = SEVEN + REGULARIZATION if regularization else SEVEN
    return space if max_epochs is None else tuple(_capped(p, max_epochs) for p in space)


def factorial_space(
    space: tuple[Parameter, ...], vary: tuple[str, ...], baseline: TrainConfig
) -> tuple[Parameter, ...]:
    """``space`` with each parameter not in ``vary`` held at ``baseline``'s value: its grid is the full
    factorial of the varied parameters at the baseline's other settings (``--vary``)."""
    held = lambda p: Parameter(p.name, (getattr(baseline, p.name),), p.distribution)  # noqa: E731
    return tuple(p if p.name in vary else held(p) for p in space)


def _capped(parameter: Parameter, max_epochs: int) -> Parameter:
    if parameter.name != "epochs":
        return parameter
    dist = parameter.distribution
    assert isinstance(dist, IntDistribution)
    grid = tuple(sorted({min(value, max_epochs) for value in parameter.grid}))
    return Parameter(parameter.name, grid, IntDistribution(min(dist.low, max_epochs), min(dist.high, max_epochs)))


def distributions(space: tuple[Parameter, ...]) -> dict[str, BaseDistribution]:
    return {p.name: p.distribution for p in space}


def grid_distributions(space: tuple[Parameter, ...]) -> dict[str, BaseDistribution]:
    """Each parameter over its grid values only (``--space grid``), the space of the tabular benchmark."""
    return {p.name: CategoricalDistribution(p.grid) for p in space}


def grid_points(space: tuple[Parameter, ...], seed: int) -> list[dict[str, Any]]:
    """Every combination of grid values, in a seeded random order, those that can share a run together.

    A shuffled order makes any prefix a spread-out sample of the grid, so that
    ``--trials 50`` on the grid already says something about every parameter. Points
    whose configurations share a ``point_key`` (they differ only in learning rate, epochs
    and nll/cross_entropy) follow each other, in grid order, where the first of them fell.
    Within each block of ``ROUND`` such groups the longest (the most optimizer steps:
    small batches, many epochs) come first, so that workers do not end a study, or wait
    at its end, on a batch-16 group started last; a prefix of whole blocks still
    samples the whole grid.
    """
    points = [
        dict(zip([p.name for p in space], values, strict=True))
        for values in itertools.product(*(p.grid for p in space))
    ]
    heads = list(points)
    random.Random(seed).shuffle(heads)
    runs: dict[TrainConfig, list[dict[str, Any]]] = {}
    for point in heads:
        runs.setdefault(point_key(point), [])
    for point in points:
        runs[point_key(point)].append(point)
    groups = list(runs.values())
    # sorted() is stable, so groups of equal length keep their shuffled order.
    blocks = [sorted(groups[i : i + ROUND], key=_steps, reverse=True) for i in range(0, len(groups), ROUND)]
    return [point for block in blocks for run in block for point in run]


def _steps(run: list[dict[str, Any]]) -> float:
    """A group's length in optimizer steps per training image: its longest epochs over its batch size."""
    return max(p["epochs"] for p in run) / run[0]["batch_size"]


def oat_points(space: tuple[Parameter, ...], baseline: TrainConfig) -> list[dict[str, Any]]:
    """The baseline, then each parameter moved alone to each of its other grid values.

    The points that can share the baseline's run (other learning rates, epochs, the
    cross-entropy loss) come first, next to it; the others follow longest first (batch
    16 before the rest), so that a second worker does not end the study on it.
    """
    points = oat_moves(space, baseline)
    base = points[0]
    shares = lambda point: point_key(point, baseline) == point_key(base, baseline)  # noqa: E731
    return sorted(points, key=lambda point: (not shares(point), 0 if shares(point) else -_steps([point])))


def oat_moves(space: tuple[Parameter, ...], baseline: TrainConfig) -> list[dict[str, Any]]:
    """``oat_points`` in the space's order (without torch, for a command's help)."""
    base = {p.name: getattr(baseline, p.name) for p in space}
    return [base] + [{**base, p.name: value} for p in space for value in p.grid if value != base[p.name]]


def point_key(point: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """The ``run_key`` of ``point`` applied to ``base``: points with equal keys train as one group."""
    from trainer.loop import run_key  # torch: not for a command's --help

    return run_key((base or TrainConfig()).replace(**point))


def point_network(point: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """The ``member_key`` of ``point`` applied to ``base``: points with equal ones are one network of a group."""
    from trainer.loop import member_key

    return member_key((base or TrainConfig()).replace(**point))
