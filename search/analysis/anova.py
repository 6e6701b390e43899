"""How the variance of a study's values divides among parameters and pairs of them.

- interactions: the pairs whose cells add to the additive model of every main effect
  (least squares; on a complete grid, the two-way ANOVA's interaction sum of squares) more
  than the noise allows, each with its table of medians. With K >= 2 seeds per point and
  parameters taken at their values (a grid, or a random study of few values): an F test of
  each pair against the seeds' replicate error (plus the validation images' noise,
  ``search.analysis.sampling``), Holm over the pairs. Otherwise (one seed, or binned
  values): a Freedman-Lane permutation of the additive model's residuals, the largest
  pair statistic over the pairs as the family's null. Every pair tested is listed with its
  family-wise p and verdict (``pair_tests``); parameters held at one value (a ``--vary``
  factorial's) make no pair;
- the exact functional ANOVA of a complete grid (a ``--vary`` factorial's grid is its varied
  parameters', ``grid_size``), and a least-squares ANOVA of its points
  above chance (the at-chance runs otherwise dominate every share);
- Optuna's PED-ANOVA and fANOVA estimators, to set beside it.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import optuna
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from scipy import special

from search.analysis.sampling import ImageNoise
from search.analysis.table import TrialTable
from search.analysis.verdicts import ALPHA, holm
from search.space import search_space

TOP_PAIRS = 3
PERMUTATIONS = 999
MIN_PER_CELL = 2  # fewer trials per filled cell on average, and the cells would only fit the noise


F_TEST, FREEDMAN_LANE = "F test against the seeds' replicate error, Holm over pairs", (
    "Freedman-Lane permutation of the additive residuals, largest statistic over pairs")


INTERACTS, NOT_SHOWN = "interacts", "not shown"  # a pair's verdict: its family-wise p below ALPHA, or not


class PairTest(NamedTuple):
    """One tested pair: its share of the variance beyond the main effects, its family-wise p, and the verdict."""

    parameters: tuple[str, str]
    share: float
    p: float
    verdict: str  # INTERACTS (p < ALPHA) or NOT_SHOWN
    method: str


class Interaction(NamedTuple):
    """A parameter pair's share of the variance beyond the main effects, its family-wise p, and its medians."""

    parameters: tuple[str, str]
    share: float  # of the total variance, beyond the two main effects
    p: float  # family-wise: Holm-adjusted F test, or the permutation null of the largest pair statistic
    rows: list[str]  # levels of the first parameter
    columns: list[str]  # levels of the second
    medians: list[list[float | None]]  # None where no trial fell in the cell
    method: str = F_TEST


def _one_hot(codes: np.ndarray) -> np.ndarray:
    """Indicator columns of ``codes``' distinct rows."""
    _, group = np.unique(codes, axis=0, return_inverse=True)
    return np.eye(int(group.max()) + 1)[group.reshape(-1)]


def _basis(x: np.ndarray) -> np.ndarray:
    """An orthonormal basis of ``x``'s column space (collinear columns allowed)."""
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, sv > sv[0] * 1e-10]


def _pair_shares(table: TrialTable, rows: np.ndarray | None = None) -> tuple[list[tuple[str, str]], Callable]:
    """The pairs with enough trials per cell, and a function of the values giving each pair's share beyond
    the additive model of every parameter: what its cells add to that least-squares fit, over the total.

    On a complete grid this is the two-way ANOVA's interaction sum of squares; on an unbalanced
    design (a random study) it does not count a confounded main effect as an interaction.
    """
    rows = np.arange(len(table.values)) if rows is None else rows
    codes = {p: table.codes[p][rows] for p in table.params}
    additive = np.hstack([np.ones((len(rows), 1)), *(_one_hot(c[:, None]) for c in codes.values())])
    base = _basis(additive)
    pairs, bases = [], []
    for a, b in itertools.combinations(table.params, 2):
        cells = _one_hot(np.column_stack([codes[a], codes[b]]))
        if len(rows) >= MIN_PER_CELL * cells.shape[1]:
            pairs.append((a, b))
            bases.append(_basis(np.hstack([additive, cells])))

    def shares(y: np.ndarray) -> np.ndarray:
        total = float(((y - y.mean()) ** 2).sum())
        fitted = float(((base.T @ y) ** 2).sum())
        return np.maximum(0.0, np.array([(((u.T @ y) ** 2).sum() - fitted) / total for u in bases]))

    return pairs, shares


class _Design(NamedTuple):
    pairs: list[tuple[str, str]]
    additive: np.ndarray  # an orthonormal basis of the additive model
    cells: list[np.ndarray]  # each pair's basis of the additive model and its cells
    df: list[int]  # what each pair's cells add, in dimensions


def _design(table: TrialTable, rows: np.ndarray, per_cell: int) -> _Design:
    """The pairs of parameters with two or more levels each (and ``per_cell`` trials per cell) and their bases."""
    params = [p for p in table.params if len(np.unique(table.codes[p][rows])) > 1]
    codes = {p: table.codes[p][rows] for p in params}
    additive = _basis(np.hstack([np.ones((len(rows), 1)), *(_one_hot(c[:, None]) for c in codes.values())]))
    pairs, bases, dfs = [], [], []
    for a, b in itertools.combinations(params, 2):
        cells = _one_hot(np.column_stack([codes[a], codes[b]]))
        if len(rows) < per_cell * cells.shape[1]:
            continue
        u = _basis(np.hstack([additive, cells]))
        if u.shape[1] > additive.shape[1]:
            pairs.append((a, b))
            bases.append(u)
            dfs.append(u.shape[1] - additive.shape[1])
    return _Design(pairs, additive, bases, dfs)


def _pair_ss(design: _Design, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's sum of squares beyond the additive model, and the additive model's residual sum of squares,
    of ``y`` (one column per resample)."""
    fitted = ((design.additive.T @ y) ** 2).sum(axis=0)
    ss = np.array([((u.T @ y) ** 2).sum(axis=0) - fitted for u in design.cells])
    return np.maximum(ss, 0.0), (y**2).sum(axis=0) - fitted


def pair_tests(
    table: TrialTable,
    seeds: np.ndarray | None = None,
    noise: ImageNoise | None = None,
    seed: int = 0,
    resamples: int = PERMUTATIONS,
) -> list[PairTest]:
    """Every testable pair of parameters with two or more levels each, with its family-wise p and verdict.

    ``seeds``: the ``[trial, seed]`` validation accuracies (failed seeds NaN), or None. With
    K >= 2 and no binned parameter, each pair's F against the replicate error; else Freedman-Lane.
    """
    if len(table.params) < 2 or float(np.ptp(table.values)) == 0:
        return []
    binned = any(lv.binned for lv in table.levels.values())
    found, method = None, F_TEST
    if seeds is not None and not binned:
        found = _f_tests(table, seeds, noise)
    if found is None:
        found, method = _freedman_lane(table, seed, resamples), FREEDMAN_LANE
    return [PairTest(pair, share, p, INTERACTS if p < ALPHA else NOT_SHOWN, method) for pair, share, p in found]


def interactions(
    table: TrialTable,
    seeds: np.ndarray | None = None,
    noise: ImageNoise | None = None,
    top: int = TOP_PAIRS,
    seed: int = 0,
    resamples: int = PERMUTATIONS,
    tests: list[PairTest] | None = None,
) -> list[Interaction]:
    """Up to ``top`` pairs whose cells add to the additive model beyond the noise, family-wise at 5%, with medians.

    ``tests``: the ``pair_tests`` already made of these trials (else they are made here, as it says).
    """
    tests = pair_tests(table, seeds, noise, seed, resamples) if tests is None else tests
    out = [Interaction((a, b), t.share, t.p, table.levels[a].labels, table.levels[b].labels,
                       _median_cells(table, a, b), t.method)
           for t in tests if t.verdict == INTERACTS for a, b in [t.parameters]]  # fmt: skip
    return sorted(out, key=lambda i: -i.share)[:top]


def _f_tests(
    table: TrialTable, seeds: np.ndarray, noise: ImageNoise | None
) -> list[tuple[tuple[str, str], float, float]] | None:
    """Each pair's (pair, share, Holm-adjusted p) by the F test against replicate error; None without replicates."""
    counts = np.isfinite(seeds).sum(axis=1)
    rows = np.flatnonzero(counts > 0)
    dof = int((counts[rows] - 1).sum())
    if dof == 0:
        return None
    y = np.nanmean(seeds[rows], axis=1)
    within = float(np.nansum((seeds[rows] - y[:, None]) ** 2)) / dof
    if within <= 0:
        return None
    design = _design(table, rows, 1)
    if not design.pairs:
        return []
    seeds_part = within * float(np.mean(1.0 / counts[rows]))
    images = noise.variance if noise is not None else 0.0
    error = seeds_part + images
    df2 = error**2 / (seeds_part**2 / dof + (images**2 / noise.df if noise is not None and images else 0.0))
    ss, _ = _pair_ss(design, y)
    total = float(((y - y.mean()) ** 2).sum())
    f = ss / np.array(design.df) / error
    p = special.fdtrc(np.array(design.df, dtype=float), df2, f)
    adjusted = holm([float(v) for v in p])
    return [(pair, float(v) / total, float(a))  # type: ignore[arg-type]
            for pair, v, a in zip(design.pairs, ss, adjusted, strict=True)]  # fmt: skip


def _freedman_lane(table: TrialTable, seed: int, resamples: int) -> list[tuple[tuple[str, str], float, float]]:
    """Each pair's (pair, share, p): its F-like statistic against the largest over pairs when the additive
    model's residuals are shuffled (seeded), the family's null."""
    rows = np.arange(len(table.values))
    design = _design(table, rows, MIN_PER_CELL)
    if not design.pairs:
        return []
    y = table.values
    residual = y - design.additive @ (design.additive.T @ y)
    n = len(y)
    dims = np.array([u.shape[1] for u in design.cells])
    if (n - dims <= 0).any():
        return []

    def statistics(v: np.ndarray) -> np.ndarray:
        ss, rss = _pair_ss(design, v)
        rest = np.maximum(rss - ss, 1e-300)
        return (ss / np.array(design.df)[:, None]) / (rest / (n - dims)[:, None])

    observed = statistics(residual[:, None])[:, 0]
    rng = np.random.default_rng(seed)
    shuffled = np.column_stack([rng.permutation(residual) for _ in range(resamples)])
    null = statistics(shuffled).max(axis=0)
    ss, _ = _pair_ss(design, residual[:, None])
    total = float(((y - y.mean()) ** 2).sum())
    return [(pair, float(v) / total, float((1 + (null >= o - 1e-12).sum()) / (resamples + 1)))
            for pair, v, o in zip(design.pairs, ss[:, 0], observed, strict=True)]  # fmt: skip


def _residual(x: np.ndarray, y: np.ndarray) -> float:
    """The residual sum of squares of the least-squares fit of ``y`` on ``x`` (collinear columns allowed)."""
    return float((y**2).sum() - ((_basis(x).T @ y) ** 2).sum())


def above_chance_anova(table: TrialTable, chance: float) -> dict[str, float]:
    """Each parameter's and pair's share of the variance over the trials at or above ``chance``, and the rest.

    Without the at-chance points the design is unbalanced, so the shares come from least
    squares (type II): a parameter's is what leaving it out of the additive model of every
    parameter loses; a pair's is what its cells add to that model. They need not add to 1;
    "rest" is what they leave, at least 0.
    """
    rows = np.flatnonzero(table.values >= chance)
    y = table.values[rows]
    if len(y) < 2 or float(np.ptp(y)) == 0:
        return {}
    total = float(((y - y.mean()) ** 2).sum())
    columns = {p: _one_hot(table.codes[p][rows][:, None]) for p in table.params}
    ones = np.ones((len(y), 1))
    additive = np.hstack([ones, *columns.values()])
    base = _residual(additive, y)
    out = {}
    for p in table.params:
        others = np.hstack([ones, *(c for q, c in columns.items() if q != p)])
        out[p] = (_residual(others, y) - base) / total
    pairs, shares = _pair_shares(table, rows)
    out |= {f"{a} x {b}": float(v) for (a, b), v in zip(pairs, shares(y), strict=True)}
    out["rest"] = max(0.0, 1.0 - sum(out.values()))
    return out


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


def optuna_importances(
    study: optuna.Study, seed: int = 0, params: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """Optuna's PED-ANOVA and fANOVA importances of ``params`` (None: all), each adding up to 1; an evaluator
    that fails is left out."""
    evaluators = {
        "PedAnovaImportanceEvaluator": PedAnovaImportanceEvaluator,
        "FanovaImportanceEvaluator": lambda: FanovaImportanceEvaluator(seed=seed),
    }
    out = {}
    for name, evaluator in evaluators.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shares = optuna.importance.get_param_importances(study, evaluator=evaluator(), params=params)
            out[name] = {k: float(v) for k, v in shares.items()}
        except (ImportError, ValueError, RuntimeError, ZeroDivisionError):
            continue  # too few trials, or every trial has the same parameters
    return out


def grid_size(study: optuna.Study, params: list[str]) -> int | None:
    """How many points the study's grid holds, from the project's space (None for another space).

    ``params``: the study's parameters. The grid is the space's under the study's ``max_epochs``
    cap (values above it merge), and on a ``--vary`` factorial only the varied parameters'
    grids count: the others are held at one value each.
    """
    attrs = study.user_attrs
    max_epochs = attrs.get("max_epochs")
    space = search_space(bool(attrs.get("regularization", False)), None if max_epochs is None else int(max_epochs))
    if {p.name for p in space} != set(params):
        return None
    vary = {name for name in str(attrs.get("vary", "") or "").split(",") if name}
    return int(np.prod([len(p.grid) for p in space if not vary or p.name in vary]))
