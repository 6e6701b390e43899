"""Which choices matter, with their uncertainty: the data behind ``python -m search effects``.

Gathered from a study's trials only (no drawing, no printing):

- one-at-a-time changes against the baseline (``search.analysis.oat``): each move's change
  with its simultaneous interval, its verdict, and the same change on the test set;
- main effects: each parameter level's count, median, mean and best (description), and
  its contrast with a reference level (``search.analysis.contrasts``): matched pairs
  with an interval over seeds on a grid, a bootstrap over trials on a random study,
  description only on an adaptive (TPE) one;
- interactions: every pair's test, and the pairs whose cells add to the additive model beyond
  the noise (``search.analysis.anova``), with their medians;
- parameters every trial holds at one value (a ``--vary`` factorial's) are left out of all of
  it, and named in one note;
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
    PairTest,
    above_chance_anova,
    exact_anova,
    grid_size,
    interactions,
    optuna_importances,
    pair_tests,
)
from search.analysis.contrasts import CONFIDENCE, Given, contrasts, given, seed_matrix
from search.analysis.contrasts import method as contrast_method
from search.analysis.oat import TEST_ATTR, FailedSeed, OatChange, oat_family
from search.analysis.oat import method as oat_method
from search.analysis.sampling import ImageNoise, image_noise
from search.analysis.summary import oat_baseline
from search.analysis.table import TrialTable, finished, held_fixed, trial_table
from search.analysis.text import format_params
from search.analysis.verdicts import CHANCE, MARGIN, MAX_MARGIN
from trainer.errors import UsageError

__all__ = ["CHANCE", "CONFIDENCE", "Effects", "MainEffect", "OatChange", "gather_effects", "study_effects"]


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
    fixed: dict[str, str]  # the parameters every trial holds at one value (a --vary factorial's), left out
    main_effects: list[MainEffect]
    contrast_method: str  # how main-effect contrasts and their intervals are made; "" for description only
    oat: list[OatChange]
    oat_method: str  # K, m, the margin and what decides, in a few short lines
    failed_seeds: list[FailedSeed]  # left out of their comparisons
    interaction_tests: list[PairTest]  # every pair tested, with its family-wise p and verdict
    interactions: list[Interaction]  # the pairs that interact (the largest shares), with their medians
    importance: dict[str, dict[str, float]]  # evaluator name to parameter shares
    exact_anova: dict[str, float]  # term ("a" or "a x b", and "rest") to its share of the variance
    anova_above_chance: dict[str, float]  # the same over the grid points above chance
    failures: list[Failures]
    notes: list[str]
    given: tuple[Given, ...] = ()  # ``effect_of``'s contrasts within each value of the others (a grid's)


def gather_effects(study: optuna.Study, seed: int = 0, margin: float = MARGIN, effect_of: str | None = None) -> Effects:
    """Everything ``effects`` reports on ``study``; resampling is seeded with ``seed``; with ``effect_of``,
    that parameter's effect within each value of every other varied one (``contrasts.given``).

    Raises:
        UsageError: the study has no complete trial, ``margin`` is not positive, or ``effect_of`` is not
            a varied parameter of a grid study (a ``ValueError``).
    """
    if not 0 < margin < MAX_MARGIN:
        raise UsageError(f"the margin must be above 0 and below {MAX_MARGIN}, but got {margin}")
    complete, diverged = finished(study)
    if not complete:
        raise UsageError(f"study {study.study_name!r} has no complete trial yet")
    kind = str(study.user_attrs.get("kind", "?"))
    whole = trial_table(complete, diverged)
    rows = [t for t in complete if all(p in t.params for p in whole.params)]  # the table's trials, in order
    table, fixed = held_fixed(whole)
    if effect_of is not None and (kind != "grid" or effect_of not in table.params or len(table.params) < 2):
        varied = ", ".join(table.params) if kind == "grid" else f"none: study {study.study_name!r} is of kind {kind}"
        raise UsageError(f"--effect-of {effect_of}: it needs a parameter that a grid study varies beside "
                         f"another (varied here: {varied})")  # fmt: skip
    seeds = max(len(records.seed_values(t)) for t in complete)
    notes = [f"{p}: {lv.binning}" for p, lv in table.levels.items() if lv.binned]
    baseline = oat_baseline(study)
    family = oat_family(complete if baseline is not None else [], baseline or {}, margin)
    oat = family.rows
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
    if fixed:
        notes.append("held fixed, left out: " + ", ".join(f"{p} {v}" for p, v in fixed.items()))
    exact, why = exact_anova(table, grid_size(study, whole.params)) if kind == "grid" else ({}, "")
    if why:
        notes.append(why)
    above = above_chance_anova(table, CHANCE) if exact else {}
    noise = image_noise([records.seed_values(t) for t in rows], [_test_values(t) for t in rows])
    if baseline is None and noise is None and kind in ("grid", "random"):
        notes.append("no test accuracies stored: intervals and interaction tests leave out the validation images' "
                     "own noise")  # fmt: skip
    failed = family.failed if baseline is not None else _failed_seeds(rows, table.params)
    tests = [] if baseline is not None else pair_tests(table, seed_matrix(rows), noise, seed=seed)
    return Effects(
        study=study.study_name,
        kind=kind,
        trials=len(complete),
        seeds=seeds,
        margin=margin,
        binning={p: lv.binning for p, lv in whole.levels.items()},
        fixed=fixed,
        main_effects=main_effects(table, rows, kind if baseline is None else "oat", seed, noise),
        contrast_method=how,
        oat=oat,
        oat_method=oat_method(family),
        failed_seeds=failed,
        interaction_tests=tests,
        interactions=interactions(table, tests=tests),
        importance={} if baseline is not None else optuna_importances(study, seed, table.params if fixed else None),
        exact_anova=exact,
        anova_above_chance=above,
        failures=failures(table, complete + diverged),
        notes=notes,
        given=tuple(given(table, rows, effect_of, margin, noise)) if effect_of else (),
    )


def study_effects(study: optuna.Study, seed: int = 0) -> Effects | None:
    """``gather_effects``, or None while the study has no complete trial."""
    try:
        return gather_effects(study, seed)
    except ValueError:
        return None


def main_effects(
    table: TrialTable, trials: list[FrozenTrial], kind: str, seed: int = 0, noise: ImageNoise | None = None
) -> list[MainEffect]:
    """Per parameter level: n, median, mean and best, and its contrast with the reference level."""
    found = contrasts(table, trials, kind, seed, noise)
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
    return None if values is None else [np.nan if v is None else float(v) for v in values]


def _failed_seeds(trials: list[FrozenTrial], params: list[str]) -> list[FailedSeed]:
    """Every failed seed of the trials (named by trial number and their values of ``params``, the varied
    ones), for the studies without a baseline."""
    out = []
    for t in trials:
        values = records.seed_values(t)
        seeds = t.user_attrs.get("seeds") or list(range(1, len(values) + 1))
        for s, v, f in zip(seeds, values, verdicts.failed_seeds(values), strict=True):
            if f:
                point = format_params({p: t.params[p] for p in params})
                out.append(FailedSeed(t.number, point, s, None if np.isnan(v) else float(v)))
    return out


def oat_changes(complete: list[FrozenTrial], baseline: dict[str, Any], margin: float = MARGIN) -> list[OatChange]:
    """Each value moved alone from the baseline, decided as ``search.analysis.oat`` says."""
    return oat_family(complete, baseline, margin).rows


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
