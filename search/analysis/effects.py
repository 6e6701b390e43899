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

from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from search import records
from search.analysis.anova import Interaction, exact_anova, grid_size, interactions, optuna_importances
from search.analysis.levels import levels
from search.analysis.summary import oat_baseline
from search.analysis.table import TrialTable, finished, trial_table
from trainer.errors import UsageError

CONFIDENCE = 0.95
RESAMPLES = 2000
CHANCE = 0.2  # validation accuracy below this is no better than guessing among ten digits
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


def gather_effects(study: optuna.Study, seed: int = 0) -> Effects:
    """Everything ``effects`` reports on ``study``; bootstrap resampling is seeded with ``seed``.

    Raises:
        UsageError: the study has no complete trial (a ``ValueError``).
    """
    complete, diverged = finished(study)
    if not complete:
        raise UsageError(f"study {study.study_name!r} has no complete trial yet")
    kind = str(study.user_attrs.get("kind", "?"))
    table = trial_table(complete, diverged)
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
    exact, why = exact_anova(table, grid_size(study, table.params)) if kind == "grid" else ({}, "")
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


def study_effects(study: optuna.Study, seed: int = 0) -> Effects | None:
    """``gather_effects``, or None while the study has no complete trial."""
    try:
        return gather_effects(study, seed)
    except ValueError:
        return None


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


def main_effects(table: TrialTable, seed: int = 0) -> list[MainEffect]:
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


def failures(table: TrialTable, trials: list[FrozenTrial]) -> list[Failures]:
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
