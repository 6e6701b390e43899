"""Synthetic studies whose truth is known, in the stored trial record (``search/records.py``), made with plain Optuna.

The verdicts' tests and ``benchmarks/verdict_power.py`` read them as any study is read. A
network (a point and a seed) has a training noise that moves its validation and test accuracies
alike; each accuracy adds its own luck on single images (the seed's, apart for validation and
test), and each point its luck on the validation images and on the test images (an offset shared
by all its seeds, ``offset`` sd). ``sd`` is a run's total seed spread, ``shared`` the share of its
variance that is training noise (the rest is the single-image luck). Values are rounded to steps
of ``step`` (1/10,000 for a 10,000-image validation set).

``Noise`` holds the knobs: t tails, a per-seed effect shared by every point, moves noisier than the
baseline, a collapsed baseline seed.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from search.space import SEVEN, oat_points
from trainer.config import TrainConfig

BASE = 0.98
SD = 0.0006
STEP = 1e-4
COLLAPSED = 0.10  # a seed that collapsed to chance
DISTRIBUTIONS = {p.name: CategoricalDistribution(p.grid) for p in SEVEN}
SAME_RUN = {("loss", "cross_entropy")}  # computes nll's run to the last digit
OAT_POINTS = oat_points(SEVEN, TrainConfig())


class Noise(NamedTuple):
    """How a synthetic study's runs vary around the truth."""

    sd: float = SD  # a run's seed spread
    shared: float = 0.5  # the share of its variance that is training noise (shared by validation and test)
    offset: float = 0.0  # sd of a point's luck on its validation images (and, apart, on its test images)
    tails: float | None = None  # degrees of freedom of t-distributed noise (None: Gaussian)
    seed_effect: float = 0.0  # sd of a per-seed effect shared by every point
    noisier: float = 1.0  # the moves' noise over the baseline's, for the moves in ``noisy``
    noisy: int = 0  # how many moves (the first ones) are ``noisier``
    collapse: bool = False  # the baseline's first seed collapses to chance
    step: float = STEP


PLAIN = Noise()


def _draw(rng: np.random.Generator, n: int, sd: float, tails: float | None) -> np.ndarray:
    if tails is None:
        return rng.normal(0, sd, n)
    return rng.standard_t(tails, n) * sd / np.sqrt(tails / (tails - 2))


class _Runs:
    """Validation and test accuracies of K seeds of points, drawn under one ``Noise``."""

    def __init__(self, rng: np.random.Generator, seeds: int, noise: Noise) -> None:
        self.rng, self.k, self.n = rng, seeds, noise
        self.seed_effect = rng.normal(0, noise.seed_effect, seeds) if noise.seed_effect else np.zeros(seeds)

    def point(self, mean: float, scale: float = 1.0) -> tuple[list[float], list[float]]:
        n, k = self.n, self.k
        train = _draw(self.rng, k, scale * n.sd * np.sqrt(n.shared), n.tails)
        image_sd = scale * n.sd * np.sqrt(1 - n.shared)
        val = mean + self.seed_effect + train + _draw(self.rng, k, image_sd, n.tails) + self.rng.normal(0, n.offset)
        test = mean + self.seed_effect + train + _draw(self.rng, k, image_sd, n.tails) + self.rng.normal(0, n.offset)
        return _rounded(val, n.step), _rounded(test, n.step)


def _rounded(x: np.ndarray, step: float) -> list[float]:
    return [float(v) for v in np.round(np.clip(x, 0, 1) / step) * step]


def _record(params: dict[str, Any], val: list[float], test: list[float], **attrs: Any) -> optuna.trial.FrozenTrial:
    user = {
        "seeds": list(range(1, len(val) + 1)),
        "seed_values": val,
        "seed_test_accuracies": test,
        "val_accuracy": float(np.mean(val)),
        "test_accuracy": float(np.mean(test)),
        **attrs,
    }
    return create_trial(params=params, distributions=DISTRIBUTIONS, value=float(np.mean(val)), user_attrs=user)


def oat_trials(
    effects: dict[tuple[str, Any], float],
    seeds: int,
    rng: np.random.Generator,
    noise: Noise = PLAIN,
    shifts: dict[tuple[str, Any], float] | None = None,
) -> list[optuna.trial.FrozenTrial]:
    """A one-at-a-time study's trials: the baseline, then every move of the grid.

    ``effects``: a move's true change (others have none); ``shifts``: a move whose every
    seed is the baseline's run plus exactly this (no noise of its own). cross_entropy
    reruns the baseline.
    """
    runs = _Runs(rng, seeds, noise)
    points = OAT_POINTS
    base = points[0]
    base_val, base_test = runs.point(BASE)
    if noise.collapse:
        base_val[0] = base_test[0] = COLLAPSED
    trials = [_record(base, base_val, base_test, point=0)]
    moved = 0
    for i, point in enumerate(points[1:], start=1):
        (move,) = [(k, v) for k, v in point.items() if base[k] != v]
        if move in SAME_RUN:
            val, test = list(base_val), list(base_test)
        elif shifts and move in shifts:
            val = [round(v + shifts[move], 6) for v in base_val]
            test = [round(v + shifts[move], 6) for v in base_test]
        else:
            scale = noise.noisier if moved < noise.noisy else 1.0
            moved += 1
            val, test = runs.point(BASE + effects.get(move, 0.0), scale)
        trials.append(_record(point, val, test, point=i))
    return trials


def oat_study(
    study: optuna.Study,
    effects: dict[tuple[str, Any], float],
    seeds: int,
    rng: np.random.Generator,
    sd: float = SD,
    step: float = STEP,
    shifts: dict[tuple[str, Any], float] | None = None,
    noise: Noise | None = None,
) -> optuna.Study:
    """Fill ``study`` with ``oat_trials`` (``sd`` and ``step`` when no ``noise`` is given)."""
    study.set_user_attr("kind", "oat")
    for t in oat_trials(effects, seeds, rng, noise or Noise(sd=sd, step=step), shifts):
        study.add_trial(t)
    return study


GRID_PARAMS = ("hidden_layers", "hidden_units", "activation", "learning_rate")
# Main effects of the seed's kind: a change per value from the first value, in accuracy.
GRID_EFFECTS = {
    "hidden_layers": (0.0, -0.002, -0.02),
    "hidden_units": (-0.006, 0.0, 0.005),
    "activation": (0.0, -0.02, -0.007),
    "learning_rate": (-0.04, 0.0, 0.001),
}


def grid_trials(
    seeds: int, rng: np.random.Generator, interaction: float = 0.0, noise: Noise = PLAIN, base: float = 0.92
) -> list[optuna.trial.FrozenTrial]:
    """A complete grid over ``GRID_PARAMS`` (81 points, the rest at the baseline), additive main effects, and
    ``interaction`` added where learning rate 10 meets sigmoid and taken where it meets tanh (a pure
    learning rate x activation interaction once the main effects are fitted)."""
    runs = _Runs(rng, seeds, noise)
    grid = {p.name: p.grid for p in SEVEN if p.name in GRID_PARAMS}
    fixed = {p.name: getattr(TrainConfig(), p.name) for p in SEVEN if p.name not in GRID_PARAMS}
    trials = []
    for i, combo in enumerate(itertools.product(*grid.values())):
        point = dict(zip(grid, combo, strict=True))
        mean = base + sum(GRID_EFFECTS[p][grid[p].index(v)] for p, v in point.items())
        if point["learning_rate"] == 10.0:
            mean += {"sigmoid": interaction, "tanh": -interaction}.get(point["activation"], 0.0)
        val, test = runs.point(mean)
        trials.append(_record({**point, **fixed}, val, test, point=i))
    return trials


def noise_study(
    study: optuna.Study, trials: int, seeds: int, rng: np.random.Generator, sd: float = 0.01
) -> optuna.Study:
    """Fill ``study`` with a random-search study of pure noise over the grid's values: no effect, no interaction."""
    study.set_user_attr("kind", "random")
    runs = _Runs(rng, seeds, Noise(sd=sd))
    for _ in range(trials):
        params = {p.name: p.grid[rng.integers(len(p.grid))] for p in SEVEN}
        val, test = runs.point(0.9)
        study.add_trial(_record(params, val, test))
    return study
