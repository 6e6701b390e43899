"""How the variance of a study's values divides among parameters and pairs of them.

- interactions: the pairs whose cells explain the most variance beyond their two main
  effects (two-way ANOVA sums of squares), each with its table of medians;
- the exact functional ANOVA of a complete grid;
- Optuna's PED-ANOVA and fANOVA estimators, to set beside it.
"""

from __future__ import annotations

import itertools
import warnings
from typing import NamedTuple

import numpy as np
import optuna
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

from search.analysis.table import TrialTable
from search.space import search_space

TOP_PAIRS = 3
MIN_SHARE = 0.01  # a pair explaining less of the variance than this is not reported as an interaction
MIN_PER_CELL = 2  # fewer trials per filled cell on average, and the cells would only fit the noise


class Interaction(NamedTuple):
    """A parameter pair's share of the variance beyond its main effects, and its table of medians."""

    parameters: tuple[str, str]
    share: float  # of the total variance, beyond the two main effects
    rows: list[str]  # levels of the first parameter
    columns: list[str]  # levels of the second
    medians: list[list[float | None]]  # None where no trial fell in the cell


def _between_squares(codes: np.ndarray, y: np.ndarray) -> float:
    """The sum of squares between the groups that ``codes`` cuts ``y`` into."""
    _, group = np.unique(codes, axis=0, return_inverse=True)
    group = group.reshape(-1)
    n = np.bincount(group)
    means = np.bincount(group, weights=y) / n
    return float((n * (means - y.mean()) ** 2).sum())


def interactions(table: TrialTable, top: int = TOP_PAIRS) -> list[Interaction]:
    """The ``top`` pairs whose cells explain most variance beyond their main effects (at least 1%), with medians.

    The share is the two-way ANOVA's interaction sum of squares (the cells' between sum
    of squares less both main effects') over the total; unbalanced designs can make it
    slightly negative, which counts as none. Pairs with fewer than two trials per filled
    cell on average are skipped: their cells would explain the noise.
    """
    y = table.values
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0 or len(table.params) < 2:
        return []
    main = {p: _between_squares(table.codes[p][:, None], y) for p in table.params}
    found = []
    for a, b in itertools.combinations(table.params, 2):
        pairs = np.column_stack([table.codes[a], table.codes[b]])
        if len(y) < MIN_PER_CELL * len(np.unique(pairs, axis=0)):
            continue
        cells = _between_squares(pairs, y)
        share = max(0.0, (cells - main[a] - main[b]) / total)
        if share >= MIN_SHARE:
            found.append(
                Interaction((a, b), share, table.levels[a].labels, table.levels[b].labels, _median_cells(table, a, b))
            )
    return sorted(found, key=lambda i: -i.share)[:top]


def _median_cells(table: TrialTable, a: str, b: str) -> list[list[float | None]]:
    out: list[list[float | None]] = []
    for i in range(len(table.levels[a].labels)):
        row: list[float | None] = []
        for j in range(len(table.levels[b].labels)):
            y = table.values[(table.codes[a] == i) & (table.codes[b] == j)]
            row.append(float(np.median(y)) if len(y) else None)
        out.append(row)
    return out


def exact_anova(table: TrialTable, points: int | None = None) -> tuple[dict[str, float], str]:
    """The functional ANOVA of a complete grid: each main effect's and pair's share of the variance, and the rest.

    On a full factorial grid with every point weighted alike, the decomposition is
    exact: the shares of all terms add up to 1, and "rest" holds the terms of three and
    more parameters. ``points`` is the grid's size when known (a value no trial finished
    is then missing too). Returns the shares, or nothing and the reason the grid is not complete.
    """
    shape = tuple(len(table.levels[p].labels) for p in table.params)
    size = max(points or 0, int(np.prod(shape)))
    index = tuple(table.codes[p] for p in table.params)
    sums, counts = np.zeros(shape), np.zeros(shape)
    np.add.at(sums, index, table.values)
    np.add.at(counts, index, 1)
    missing = int((counts == 0).sum()) + size - counts.size
    if missing or any(lv.binned for lv in table.levels.values()):
        return {}, f"the grid is not complete ({missing} of {size} points have no complete trial): no exact ANOVA"
    grid = sums / counts
    variance = float(grid.var())
    if variance == 0:
        return {}, "every grid point has the same value: no variance to share out"
    axes = range(len(shape))
    f0 = grid.mean()
    mains = {i: grid.mean(axis=tuple(a for a in axes if a != i)) - f0 for i in axes}
    shares = {table.params[i]: float((m**2).mean()) / variance for i, m in mains.items()}
    for i, j in itertools.combinations(axes, 2):
        cell = grid.mean(axis=tuple(a for a in axes if a not in (i, j)))
        pure = cell - mains[i][:, None] - mains[j][None, :] - f0
        shares[f"{table.params[i]} x {table.params[j]}"] = float((pure**2).mean()) / variance
    shares["rest"] = max(0.0, 1.0 - sum(shares.values()))
    return shares, ""


def optuna_importances(study: optuna.Study, seed: int = 0) -> dict[str, dict[str, float]]:
    """Optuna's PED-ANOVA and fANOVA importances, each adding up to 1; an evaluator that fails is left out."""
    evaluators = {
        "PedAnovaImportanceEvaluator": PedAnovaImportanceEvaluator,
        "FanovaImportanceEvaluator": lambda: FanovaImportanceEvaluator(seed=seed),
    }
    out = {}
    for name, evaluator in evaluators.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shares = optuna.importance.get_param_importances(study, evaluator=evaluator())
            out[name] = {k: float(v) for k, v in shares.items()}
        except (ImportError, ValueError, RuntimeError, ZeroDivisionError):
            continue  # too few trials, or every trial has the same parameters
    return out


def grid_size(study: optuna.Study, params: list[str]) -> int | None:
    """How many points the study's grid holds, from the project's space (None for another space)."""
    space = search_space(bool(study.user_attrs.get("regularization", False)))
    return int(np.prod([len(p.grid) for p in space])) if [p.name for p in space] == params else None
