"""Synthetic studies whose truth is known, in the stored trial record (``search/records.py``), made with plain Optuna.

The verdicts' tests and ``benchmarks/verdict_power.py`` read them as any study is read.
A run's accuracy is ``base + effect + noise``, the noise Gaussian per run (seed and
point) with standard deviation ``sd``, rounded to steps of ``step`` (1/10,000 for a
10,000-image validation set). The test accuracy is drawn the same way, apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from search.space import SEVEN, oat_points
from trainer.config import TrainConfig

BASE = 0.98
SD = 0.0006
STEP = 1e-4
DISTRIBUTIONS = {p.name: CategoricalDistribution(p.grid) for p in SEVEN}
SAME_RUN = {("loss", "cross_entropy")}  # computes nll's run to the last digit


def _runs(rng: np.random.Generator, mean: float, seeds: int, sd: float, step: float) -> list[float]:
    return [float(v) for v in np.round((mean + rng.normal(0, sd, seeds)) / step) * step]


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


def oat_study(
    study: optuna.Study,
    effects: dict[tuple[str, Any], float],
    seeds: int,
    rng: np.random.Generator,
    sd: float = SD,
    step: float = STEP,
    shifts: dict[tuple[str, Any], float] | None = None,
) -> optuna.Study:
    """Fill ``study`` with a one-at-a-time study: the baseline, then every move of the grid.

    ``effects``: a move's true change (others have none); ``shifts``: a move whose every
    seed is the baseline's run plus exactly this (no noise of its own). cross_entropy
    reruns the baseline.
    """
    study.set_user_attr("kind", "oat")
    points = oat_points(SEVEN, TrainConfig())
    base = points[0]
    base_val, base_test = _runs(rng, BASE, seeds, sd, step), _runs(rng, BASE, seeds, sd, step)
    study.add_trial(_record(base, base_val, base_test, point=0))
    for i, point in enumerate(points[1:], start=1):
        (move,) = [(k, v) for k, v in point.items() if base[k] != v]
        if move in SAME_RUN:
            val, test = list(base_val), list(base_test)
        elif shifts and move in shifts:
            val = [round(v + shifts[move], 6) for v in base_val]
            test = [round(v + shifts[move], 6) for v in base_test]
        else:
            change = effects.get(move, 0.0)
            val, test = _runs(rng, BASE + change, seeds, sd, step), _runs(rng, BASE + change, seeds, sd, step)
        study.add_trial(_record(point, val, test, point=i))
    return study


def noise_study(
    study: optuna.Study, trials: int, seeds: int, rng: np.random.Generator, sd: float = 0.01
) -> optuna.Study:
    """Fill ``study`` with a random-search study of pure noise over the grid's values: no effect, no interaction."""
    study.set_user_attr("kind", "random")
    for _ in range(trials):
        params = {p.name: p.grid[rng.integers(len(p.grid))] for p in SEVEN}
        val, test = _runs(rng, 0.9, seeds, sd, STEP), _runs(rng, 0.9, seeds, sd, STEP)
        study.add_trial(_record(params, val, test))
    return study
