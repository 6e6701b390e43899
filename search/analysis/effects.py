"""Which choices matter, with their uncertainty: the data behind ``python -m search effects``.

Gathered from a study's trials only (no drawing, no printing):

- one-at-a-time changes against the baseline: each move's change with its 95% t
  interval over the training seeds (paired when both points ran the same seeds), its p
  value, Holm's adjusted p value over the study's moves, the Bonferroni interval that
  goes with it, a verdict (``search.analysis.verdicts``), and the same change on the
  test set as a replication;
- main effects: each parameter level's count, median, mean and best (description), and
  its contrast with a reference level (``search.analysis.contrasts``): matched pairs
  with an interval over seeds on a grid, a bootstrap over trials on a random study,
  description only on an adaptive (TPE) one;
- interactions: the parameter pairs whose share of the variance beyond their two main
  effects beats a seeded permutation null of the largest share, with their medians;
- importance: Optuna's PED-ANOVA and fANOVA evaluators, and on a complete grid the exact
  functional ANOVA of the grid, over all points and over the points above chance;
- failures: trials at chance and diverged runs per level.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.analysis import verdicts
from search.analysis.anova import (
    Interaction,
    above_chance_anova,
    exact_anova,
    grid_size,
    interactions,
    optuna_importances,
)
from search.analysis.contrasts import CONFIDENCE, contrasts
from search.analysis.contrasts import method as contrast_method
from search.analysis.levels import levels
from search.analysis.summary import oat_baseline
from search.analysis.table import TrialTable, finished, trial_table
from search.analysis.verdicts import MARGIN
from trainer.errors import UsageError

CHANCE = 0.2  # validation accuracy below this is no better than guessing among ten digits
TEST_ATTR = "seed_test_accuracies"  # each seed's test accuracy, in seed order (search/records.py)


class MainEffect(NamedTuple):
    """One parameter level: count, median, mean and best (description), and its contrast with the reference."""

    parameter: str
    value: str
    n: int
    median: float
    mean: float
    best: float
    reference: str  # the parameter's reference level
    contrast: float | None  # this level minus the reference (matched pairs on a grid)
    ci_low: float | None  # of the contrast; None where the trials allow no interval
    ci_high: float | None
    pairs: int  # matched pairs on a grid, else this level's trials
    wins: float | None  # share of matched pairs where this level is the higher


class OatChange(NamedTuple):
    """One value moved alone from the baseline: its change, tests, intervals, verdict and test-set replication."""

    parameter: str
    value: str
    seeds: int
    paired: bool
    change: float  # the moved point's mean over seeds minus the baseline's, on validation
    ci_low: float | None  # 95% t interval over the seeds, unadjusted
    ci_high: float | None
    p: float | None  # paired t test (Welch's when the seeds differ); None: no test, see ``note``
    p_adjusted: float | None  # Holm over the study's moves (identical ones left out)
    adjusted_low: float | None  # Bonferroni interval over the same moves
    adjusted_high: float | None
    verdict: str  # one of verdicts.VERDICTS
    note: str  # why there is no test, else ""
    test_change: float | None  # the same change on the test set, paired over the seeds
    test_low: float | None
    test_high: float | None


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
    margin: float  # a change inside +-margin is negligible
    binning: dict[str, str]
    main_effects: list[MainEffect]
    contrast_method: str  # how main-effect contrasts and their intervals are made; "" for description only
    oat: list[OatChange]
    oat_method: str  # K, the margin and the method, in one line
    interactions: list[Interaction]
    importance: dict[str, dict[str, float]]  # evaluator name to parameter shares
    exact_anova: dict[str, float]  # term ("a" or "a x b", and "rest") to its share of the variance
    anova_above_chance: dict[str, float]  # the same over the grid points above chance
    failures: list[Failures]
    notes: list[str]


def gather_effects(study: optuna.Study, seed: int = 0, margin: float = MARGIN) -> Effects:
    """Everything ``effects`` reports on ``study``; resampling is seeded with ``seed``.

    Raises:
        UsageError: the study has no complete trial, or ``margin`` is not positive (a ``ValueError``).
    """
    if not margin > 0:
        raise UsageError(f"the margin must be positive, but got {margin=}")
    complete, diverged = finished(study)
    if not complete:
        raise UsageError(f"study {study.study_name!r} has no complete trial yet")
    kind = str(study.user_attrs.get("kind", "?"))
    table = trial_table(complete, diverged)
    rows = [t for t in complete if all(p in t.params for p in table.params)]  # the table's trials, in order
    seeds = max(len(records.seed_values(t)) for t in complete)
    notes = [f"{p}: {lv.binning}" for p, lv in table.levels.items() if lv.binned]
    baseline = oat_baseline(study)
    oat = oat_changes(complete, baseline, margin) if baseline is not None else []
    if baseline is not None:
        notes.append(
            "main effects of a one-at-a-time study: each moved value is one point, the baseline's value all the rest"
        )
    if oat and seeds < verdicts.MIN_SEEDS:
        notes.append(
            f"{seeds} seed(s) per point: no verdict below {verdicts.MIN_SEEDS} seeds "
            "(run it again with --seeds K under a new --study-name)"
        )
    how = contrast_method(kind) if baseline is None else ""
    if baseline is None and not how:
        notes.append(f"main effects of a {kind} study are description only: its trials are chosen adaptively, "
                     "so no interval over them is valid")  # fmt: skip
    if how and kind == "grid" and seeds < 2:
        notes.append("one seed per grid point: the matched contrasts have no interval (the grid's points are "
                     "the population; only more seeds tell their noise)")  # fmt: skip
    exact, why = exact_anova(table, grid_size(study, table.params)) if kind == "grid" else ({}, "")
    if why:
        notes.append(why)
    above = above_chance_anova(table, CHANCE) if exact else {}
    return Effects(
        study=study.study_name,
        kind=kind,
        trials=len(complete),
        seeds=seeds,
        margin=margin,
        binning={p: lv.binning for p, lv in table.levels.items()},
        main_effects=main_effects(table, rows, kind if baseline is None else "oat", seed),
        contrast_method=how,
        oat=oat,
        oat_method=oat_method(oat, margin),
        interactions=[] if baseline is not None else interactions(table, seed=seed),
        importance={} if baseline is not None else optuna_importances(study, seed),
        exact_anova=exact,
        anova_above_chance=above,
        failures=failures(table, complete + diverged),
        notes=notes,
    )


def study_effects(study: optuna.Study, seed: int = 0) -> Effects | None:
    """``gather_effects``, or None while the study has no complete trial."""
    try:
        return gather_effects(study, seed)
    except ValueError:
        return None


def main_effects(table: TrialTable, trials: list[FrozenTrial], kind: str, seed: int = 0) -> list[MainEffect]:
    """Per parameter level: n, median, mean and best, and its contrast with the reference level."""
    found = contrasts(table, trials, kind, seed)
    rows = []
    for p in table.params:
        for level, label in enumerate(table.levels[p].labels):
            y = table.values[table.codes[p] == level]
            if len(y) == 0:
                continue
            c = found[p, level]
            rows.append(
                MainEffect(p, label, len(y), float(np.median(y)), float(y.mean()), float(y.max()),
                           c.reference, c.contrast, c.low, c.high, c.pairs, c.wins)
            )  # fmt: skip
    return rows


def _test_values(trial: FrozenTrial) -> list[float] | None:
    values = trial.user_attrs.get(TEST_ATTR)
    if values is None:
        return None
    return [float(v) if v is not None else float("nan") for v in values]


def _same_seeds(moved: FrozenTrial, base: FrozenTrial) -> bool:
    seeds = moved.user_attrs.get("seeds")
    return seeds is not None and seeds == base.user_attrs.get("seeds")


def oat_changes(complete: list[FrozenTrial], baseline: dict[str, Any], margin: float = MARGIN) -> list[OatChange]:
    """Each value moved alone from the baseline, in the space's order, with its tests, intervals and verdict.

    The family is the study's moves less the identical ones (a move that reruns the
    baseline, as cross_entropy does nll, tests nothing): Holm adjusts their p values and
    the Bonferroni interval at ``1 - 0.05 / m`` goes with it.
    """
    base = next((t for t in complete if t.params == baseline), None)
    if base is None:
        return []
    names = list(baseline)
    moves = []
    for t in complete:
        changed = [k for k, v in t.params.items() if baseline.get(k) != v]
        if len(changed) == 1:
            moves.append((changed[0], t))
    moves.sort(key=lambda m: names.index(m[0]))
    base_values = records.seed_values(base)
    tests = []
    for _, t in moves:
        test = verdicts.paired_test(records.seed_values(t), base_values, _same_seeds(t, base))
        if test.identical and _test_values(t) != _test_values(base):
            test = test._replace(why="every seed's validation accuracy is the baseline's, its test accuracy is not")
        tests.append(test)
    family = [i for i, test in enumerate(tests) if not test.identical]
    adjusted = dict(zip(family, verdicts.holm([tests[i].p for i in family]), strict=True))
    level = 1 - verdicts.ALPHA / max(len(family), 1)
    rows = []
    for i, ((param, t), test) in enumerate(zip(moves, tests, strict=True)):
        values, paired = records.seed_values(t), test.paired
        low, high = verdicts.t_interval(values, base_values, paired, CONFIDENCE)
        adj_low, adj_high = verdicts.t_interval(values, base_values, paired, level)
        if test.p is None:
            adj_low = adj_high = None  # no test, no adjusted interval to judge by
        p_adj = adjusted.get(i)
        test_change, test_low, test_high = _replication(t, base, paired)
        rows.append(
            OatChange(param, _label(t.params[param]), test.seeds, paired, test.change, low, high, test.p, p_adj,
                      adj_low, adj_high, verdicts.verdict(test, p_adj, adj_low, adj_high, margin),
                      "" if test.identical else test.why, test_change, test_low, test_high)
        )  # fmt: skip
    return rows


def _replication(moved: FrozenTrial, base: FrozenTrial, paired: bool) -> tuple[float | None, ...]:
    """The change on the test set with its 95% t interval over the seeds, or Nones without test accuracies."""
    a, b = _test_values(moved), _test_values(base)
    if not a or not b:
        return None, None, None
    change = float(np.mean(a) - np.mean(b))
    low, high = verdicts.t_interval(a, b, paired, CONFIDENCE)
    return (change if np.isfinite(change) else None), low, high


def oat_method(rows: list[OatChange], margin: float) -> str:
    """K, the margin and the method, in one line."""
    if not rows:
        return ""
    family = sum(1 for r in rows if r.verdict != verdicts.IDENTICAL)
    k = max(r.seeds for r in rows)
    return (
        f"K = {k} training seeds, margin +-{margin:.4f}; paired t test per move, Holm over {family} moves "
        f"(identical ones left out), Bonferroni {1 - verdicts.ALPHA / max(family, 1):.2%} interval: "
        f"matters = p_adj < {verdicts.ALPHA}, that interval excluding 0 and not inside +-margin; negligible = inside "
        f"+-margin (an equivalence test); undetermined = neither, or K < {verdicts.MIN_SEEDS}, or no variance"
    )


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
