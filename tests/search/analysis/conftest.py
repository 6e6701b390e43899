"""Hand-made studies for the analysis tests: trials built with ``create_trial``, no training."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

GRID = {"layers": (1, 3, 5), "activation": ("relu", "sigmoid", "tanh"), "rate": (0.1, 1.0)}


def study(kind: str) -> optuna.Study:
    s = optuna.create_study(direction="maximize")
    s.set_user_attr("kind", kind)
    return s


def add(
    s: optuna.Study,
    params: dict[str, Any],
    seed_values: Sequence[float] | None = None,
    state: TrialState = TrialState.COMPLETE,
    histories: list[list[dict[str, float]]] | None = None,
    **user_attrs: Any,
) -> None:
    """One finished trial of ``params``; its value is the mean of ``seed_values`` (seeds 1..K)."""
    distributions = {k: _distribution(k, v) for k, v in params.items()}
    attrs: dict[str, Any] = dict(user_attrs)
    if seed_values is not None:
        attrs |= {"seeds": list(range(1, len(seed_values) + 1)), "seed_values": [float(v) for v in seed_values]}
    value = float(np.mean(seed_values)) if seed_values is not None and state == TrialState.COMPLETE else None
    system = {"histories": histories} if histories is not None else {}
    s.add_trial(
        create_trial(
            params=params,
            distributions=distributions,
            value=value,
            state=state,
            user_attrs=attrs,
            system_attrs=system,
        )
    )


def _distribution(name: str, value: Any) -> BaseDistribution:
    if name in GRID:
        return CategoricalDistribution(GRID[name])
    if isinstance(value, str):
        return CategoricalDistribution((value,))
    if isinstance(value, int):
        return IntDistribution(0, 10**6)
    return FloatDistribution(0.0, 1e6)


def grid_study(
    value: Callable[[dict[str, Any]], float], seeds: int = 1, noise: float = 0.0, seed: int = 0
) -> optuna.Study:
    """A complete grid over ``GRID``, each point ``value(point)`` plus Gaussian noise per seed."""
    rng = np.random.default_rng(seed)
    s = study("grid")
    for combo in itertools.product(*GRID.values()):
        point = dict(zip(GRID, combo, strict=True))
        add(s, point, value(point) + rng.normal(0, noise, seeds))
    return s
