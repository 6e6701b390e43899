"""Which choices matter, with their uncertainty: the data behind ``python -m search effects``.

Gathered from a study's trials only (no drawing, no printing):

- main effects: each parameter level's trials, their median, mean and best validation
  accuracy, with seeded 95% bootstrap intervals (``scipy.stats.bootstrap``) for the
  median and the mean; one trial's value is the mean over its seeds;
- one-at-a-time changes against the baseline, with a 95% t interval over the seeds
  (paired when both points ran the same seeds) and a verdict;
- interactions: the parameter pairs whose cells explain the most variance beyond their
  two main effects, each with its table of medians;
- importance: Optuna's PED-ANOVA and fANOVA evaluators, and on a complete grid the exact
  functional ANOVA of the grid itself;
- failures: trials at chance and diverged runs per level.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from search import records
from search.analysis.levels import Levels, levels
from search.analysis.summary import oat_baseline
from search.space import search_space

CONFIDENCE = 0.95
RESAMPLES = 2000
CHANCE = 0.2  # validation accuracy below this is no better than guessing among ten digits
TOP_PAIRS = 3
MIN_SHARE = 0.01  # a pair explaining less of the variance than this is not reported as an interaction
MIN_PER_CELL = 2  # fewer trials per filled cell on average, and the cells would only fit the noise
CLEAR, NOISE = "clear", "within noise"


class MainEffect(NamedTuple):
    """One parameter level's trials: count, median and mean with 95% bootstrap intervals, and best."""

    parameter: str
    value: str
    n: int
    median: float
    median_low: float | None
    median_high: float | None
    mean: float
    ci_low: float | None  # of the mean
    ci_high: float | None
    best: float


class OatChange(NamedTuple):
    """One value moved alone from the baseline: its change, 95% interval and verdict."""

    parameter: str
    value: str
    seeds: int
    paired: bool
    change: float  # the moved point's mean over seeds minus the baseline's
    ci_low: float | None
    ci_high: float | None
    verdict: str | None  # CLEAR or NOISE; None with one seed


class Interaction(NamedTuple):
    """A parameter pair's share of the variance beyond its main effects, and its table of medians."""

    parameters: tuple[str, str]
    share: float  # of the total variance, beyond the two main effects
    rows: list[str]  # levels of the first parameter
    columns: list[str]  # levels of the second
    medians: list[list[float | None]]  # None where no trial fell in the cell


class Failures(NamedTuple):
    """One parameter level's trials at chance and diverged runs."""

    parameter: str
    value: str
    n: int  # complete and diverged trials at this level
    at_chance: int
    diverged: int


class Effects(NamedTuple):
    """Everything ``python -m search effects`` reports on one study."""

    study: str
    kind: str
    trials: int  # complete trials used
    seeds: int  # the most seeds any trial ran
    binning: dict[str, str]
    main_effects: list[MainEffect]
    oat: list[OatChange]
    interactions: list[Interaction]
    importance: dict[str, dict[str, float]]  # evaluator name to parameter shares
    exact_anova: dict[str, float]  # term ("a" or "a x b", and "rest") to its share of the variance
    failures: list[Failures]
    notes: list[str]


class _Table(NamedTuple):
    """The complete trials as arrays: each parameter's level codes, and the values."""

    params: list[str]
    levels: dict[str, Levels]
    codes: dict[str, np.ndarray]
    values: np.ndarray


def gather_effects(study: optuna.Study, seed: int = 0) -> Effects:
    """Everything ``effects`` reports on ``study``; bootstrap resampling is seeded with ``seed``.

    Raises:
        ValueError: the study has no complete trial.
    """
    complete, diverged = _finished(study)
    if not complete:
        raise ValueError(f"study {study.study_name!r} has no complete trial yet")
    kind = str(study.user_attrs.get("kind", "?"))
    table = _table(complete, diverged)
    seeds = max(len(records.seed_values(t)) for t in complete)
    notes = [f"{p}: {lv.binning}" for p, lv in table.levels.items() if lv.binned]
    baseline = oat_baseline(study)
    oat = oat_changes(complete, baseline) if baseline is not None else []
    if baseline is not None:
        notes.append(
            "main effects of a one-at-a-time study: each moved value is one point, the baseline's value all the rest"
        )
    if oat and seeds < 2:
        notes.append("one seed per point: a change has no interval and no verdict (run the study with --seeds K)")
    exact, why = exact_anova(table, _grid_size(study, table.params)) if kind == "grid" else ({}, "")
    if why:
        notes.append(why)
    return Effects(
        study=study.study_name,
        kind=kind,
        trials=len(complete),
        seeds=seeds,
        binning={p: lv.binning for p, lv in table.levels.items()},
        main_effects=main_effects(table, seed),
        oat=oat,
        interactions=[] if baseline is not None else interactions(table),
        importance={} if baseline is not None else optuna_importances(study, seed),
        exact_anova=exact,
        failures=failures(table, complete + diverged),
        notes=notes,
    )


def _grid_size(study: optuna.Study, params: list[str]) -> int | None:
    """How many points the study's grid holds, from the project's space (None for another space)."""
    space = search_space(bool(study.user_attrs.get("regularization", False)))
    return int(np.prod([len(p.grid) for p in space])) if [p.name for p in space] == params else None


def study_effects(study: optuna.Study, seed: int = 0) -> Effects | None:
    """``gather_effects``, or None while the study has no complete trial."""
    try:
        return gather_effects(study, seed)
    except ValueError:
        return None


def _finished(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """The complete trials, and the failed ones that diverged (interrupted or out-of-memory ones say nothing)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return complete, [t for t in trials if t.state == TrialState.FAIL and _diverged(t)]


def trial_levels(study: optuna.Study) -> dict[tuple[str, str], list[float]]:
    """Each (parameter, level label)'s complete trial values, on the same levels as ``gather_effects``."""
    complete, diverged = _finished(study)
    if not complete:
        return {}
    table = _table(complete, diverged)
    return {
        (p, label): table.values[table.codes[p] == level].tolist()
        for p in table.params
        for level, label in enumerate(table.levels[p].labels)
    }


def _diverged(trial: FrozenTrial) -> bool:
    return str(trial.user_attrs.get("fail_reason", "")).startswith("diverged")


def _table(complete: list[FrozenTrial], others: Sequence[FrozenTrial] = ()) -> _Table:
    """The complete trials as arrays; levels are cut over them and ``others`` (diverged trials) together."""
    params = list(dict.fromkeys(k for t in complete for k in t.params))
    complete = [t for t in complete if all(p in t.params for p in params)]
    everyone = complete + [t for t in others if all(p in t.params for p in params)]
    lv = {p: levels([t.params[p] for t in everyone], _choices(complete[0], p)) for p in params}
    return _Table(
        params,
        lv,
        {p: lv[p].codes([t.params[p] for t in complete]) for p in params},
        np.array([t.value for t in complete], dtype=float),
    )


def _choices(trial: FrozenTrial, param: str) -> tuple[Any, ...]:
    """A categorical parameter's choices in the space's order (relu before sigmoid), else nothing."""
    distribution = trial.distributions.get(param)
    return distribution.choices if isinstance(distribution, CategoricalDistribution) else ()


def bootstrap_interval(values: np.ndarray, statistic: Any, seed: int) -> tuple[float | None, float | None]:
    """The 95% percentile bootstrap interval of ``statistic``; (None, None) for fewer than two values."""
    if len(values) < 2:
        return None, None
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])  # every resample is the same
    result = stats.bootstrap(
        (values,),
        statistic,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def main_effects(table: _Table, seed: int = 0) -> list[MainEffect]:
    """Per parameter level: n, median, mean and best, with bootstrap intervals for the median and the mean."""
    rows = []
    for p in table.params:
        for level, label in enumerate(table.levels[p].labels):
            y = table.values[table.codes[p] == level]
            if len(y) == 0:
                continue
            median_low, median_high = bootstrap_interval(y, np.median, seed)
            low, high = bootstrap_interval(y, np.mean, seed)
            rows.append(
                MainEffect(
                    p,
                    label,
                    len(y),
                    float(np.median(y)),
                    median_low,
                    median_high,
                    float(y.mean()),
                    low,
                    high,
                    float(y.max()),
                )
            )
    return rows


def change_interval(moved: FrozenTrial, base: FrozenTrial) -> tuple[int, bool, float, float | None, float | None]:
    """(seeds, paired, change, low, high): the moved point's change from the baseline with a 95% t interval.

    Seeds the two points share are paired (the difference per seed); otherwise the
    interval is Welch's. With one seed on either side there is no interval.
    """
    a, b = np.array(records.seed_values(moved)), np.array(records.seed_values(base))
    seeds_a, seeds_b = moved.user_attrs.get("seeds"), base.user_attrs.get("seeds")
    change = float(a.mean() - b.mean())
    if seeds_a is not None and seeds_a == seeds_b:
        diff = a - b
        if len(diff) < 2:
            return len(diff), True, change, None, None
        if np.ptp(diff) == 0:
            return len(diff), True, change, change, change
        ci = stats.ttest_1samp(diff, 0.0).confidence_interval(CONFIDENCE)
        return len(diff), True, change, float(ci.low), float(ci.high)
    if min(len(a), len(b)) < 2:
        return min(len(a), len(b)), False, change, None, None
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(CONFIDENCE)
    return min(len(a), len(b)), False, change, float(ci.low), float(ci.high)


def oat_changes(complete: list[FrozenTrial], baseline: dict[str, Any]) -> list[OatChange]:
    """Each value moved alone from the baseline, in the space's order, with its interval and verdict."""
    base = next((t for t in complete if t.params == baseline), None)
    if base is None:
        return []
    names = list(baseline)
    rows = []
    for t in complete:
        changed = [k for k, v in t.params.items() if baseline.get(k) != v]
        if len(changed) != 1:
            continue
        seeds, paired, change, low, high = change_interval(t, base)
        verdict = None if low is None or high is None else NOISE if low <= 0 <= high else CLEAR
        rows.append(OatChange(changed[0], _label(t.params[changed[0]]), seeds, paired, change, low, high, verdict))
    return sorted(rows, key=lambda r: names.index(r.parameter))


def _label(value: Any) -> str:
    return levels([value]).labels[0]


def _between_squares(codes: np.ndarray, y: np.ndarray) -> float:
    """The sum of squares between the groups that ``codes`` cuts ``y`` into."""
    _, group = np.unique(codes, axis=0, return_inverse=True)
    group = group.reshape(-1)
    n = np.bincount(group)
    means = np.bincount(group, weights=y) / n
    return float((n * (means - y.mean()) ** 2).sum())


def interactions(table: _Table, top: int = TOP_PAIRS) -> list[Interaction]:
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


def _median_cells(table: _Table, a: str, b: str) -> list[list[float | None]]:
    out: list[list[float | None]] = []
    for i in range(len(table.levels[a].labels)):
        row: list[float | None] = []
        for j in range(len(table.levels[b].labels)):
            y = table.values[(table.codes[a] == i) & (table.codes[b] == j)]
            row.append(float(np.median(y)) if len(y) else None)
        out.append(row)
    return out


def exact_anova(table: _Table, points: int | None = None) -> tuple[dict[str, float], str]:
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


def failures(table: _Table, trials: list[FrozenTrial]) -> list[Failures]:
    """Per parameter level: complete trials at chance (validation accuracy below 0.2) and diverged runs."""
    rows = []
    for p in table.params:
        lv = table.levels[p]
        for level, label in enumerate(lv.labels):
            here = [t for t in trials if p in t.params and lv.index[t.params[p]] == level]
            chance = sum(1 for t in here if t.state == TrialState.COMPLETE and t.value < CHANCE)  # type: ignore[operator]
            bad = sum(1 for t in here if t.state == TrialState.FAIL)
            rows.append(Failures(p, label, len(here), chance, bad))
    return rows
