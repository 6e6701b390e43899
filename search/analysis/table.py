"""A study's finished trials as arrays: each parameter's levels and codes, and the values.

The main effects, the interactions, the exact ANOVA and the figures all cut the trials
into the same levels, from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.analysis.levels import Levels, levels


class TrialTable(NamedTuple):
    """The complete trials as arrays: each parameter's level codes, and the values."""

    params: list[str]
    levels: dict[str, Levels]
    codes: dict[str, np.ndarray]
    values: np.ndarray


def finished(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """The complete trials, and the failed ones that diverged (interrupted or out-of-memory ones say nothing)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return complete, [t for t in trials if t.state == TrialState.FAIL and _diverged(t)]


def _diverged(trial: FrozenTrial) -> bool:
    return records.is_diverged(trial)


def trial_table(complete: list[FrozenTrial], others: Sequence[FrozenTrial] = ()) -> TrialTable:
    """The complete trials as arrays; levels are cut over them and ``others`` (diverged trials) together."""
    params = list(dict.fromkeys(k for t in complete for k in t.params))
    complete = [t for t in complete if all(p in t.params for p in params)]
    everyone = complete + [t for t in others if all(p in t.params for p in params)]
    lv = {p: levels([t.params[p] for t in everyone], _choices(complete[0], p)) for p in params}
    return TrialTable(
        params,
        lv,
        {p: lv[p].codes([t.params[p] for t in complete]) for p in params},
        np.array([t.value for t in complete], dtype=float),
    )


def held_fixed(table: TrialTable) -> tuple[TrialTable, dict[str, str]]:
    """``table`` without the parameters every trial holds at one value, and those values by name.

    A ``--vary`` factorial (or a grid whose epochs the cap merges) holds them fixed: they have no
    effect to show and no share to take. A table with no varied parameter is returned whole.
    """
    fixed = {p: table.levels[p].labels[0] for p in table.params if len(table.levels[p].labels) == 1}
    if len(fixed) == len(table.params):
        return table, {}
    params = [p for p in table.params if p not in fixed]
    return TrialTable(params, {p: table.levels[p] for p in params}, {p: table.codes[p] for p in params},
                      table.values), fixed  # fmt: skip


def _choices(trial: FrozenTrial, param: str) -> tuple[Any, ...]:
    """A categorical parameter's choices in the space's order (relu before sigmoid), else nothing."""
    distribution = trial.distributions.get(param)
    return distribution.choices if isinstance(distribution, CategoricalDistribution) else ()


def trial_levels(study: optuna.Study) -> dict[tuple[str, str], list[float]]:
    """Each (parameter, level label)'s complete trial values, on the same levels as the effects."""
    complete, diverged = finished(study)
    if not complete:
        return {}
    table = trial_table(complete, diverged)
    return {
        (p, label): table.values[table.codes[p] == level].tolist()
        for p in table.params
        for level, label in enumerate(table.levels[p].labels)
    }
