"""Main effects as contrasts against a reference level, with intervals that fit how the trials were chosen.

- grid: matched contrasts. For a parameter and a level, the pairs of points that differ
  only in that parameter (the level against the reference); the contrast is the mean of
  their differences. The grid's points are the population, not a sample of it, so the
  interval is over the training seeds (the per-seed contrast: the same seed on both sides
  of every pair, failed seeds left out of their pair) and the validation images (each
  point's offset, ``search.analysis.sampling``): a t interval with K >= 3 seeds,
  simultaneous over the study's contrasts (Bonferroni), none where the seeds do not differ.
- random: the trials are independent draws, so the difference of the level's mean from
  the reference level's mean has a seeded bootstrap interval over trials (each trial's
  value carries its seeds' noise).
- TPE and anything adaptive: the trials depend on each other; the difference of means
  is description only, with no interval.
- oat: none (the oat changes are the contrasts).

On a grid, ``given`` asks whether one parameter's effect depends on the others (``effects
--effect-of P``): each level of P against its reference, matched as above but only over the
points where another varied parameter holds one value, for every value of every other
parameter; the intervals are simultaneous over those contrasts, and each gets a verdict as
an oat change does (``verdicts.decide``: matters beyond the margin, negligible inside it, ...).

The reference level is the project's baseline value (``TrainConfig()``) when a level
holds it, else the first level.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from optuna.trial import FrozenTrial
from scipy import stats

from search import records
from search.analysis.sampling import ImageNoise
from search.analysis.table import TrialTable
from search.analysis.verdicts import MIN_SEEDS, TOLERANCE, UNDETERMINED, Estimate, decide, failed_seeds, simultaneous
from trainer.config import TrainConfig

CONFIDENCE = 0.95
RESAMPLES = 2000
MATCHED = "matched pairs; simultaneous t over seeds and validation images"
BOOTSTRAP, DESCRIPTION = "difference of means, bootstrap over trials", ""


class Contrast(NamedTuple):
    """One level against its parameter's reference level."""

    reference: str
    contrast: float | None  # None: no pair (grid) or no trial to compare with
    low: float | None
    high: float | None
    pairs: int  # matched pairs (grid), else trials at this level
    wins: float | None  # share of matched pairs where this level is higher (ties count half)


def reference_level(table: TrialTable, param: str) -> int:
    """The level holding the baseline's value, else the first."""
    default = getattr(TrainConfig(), param, None)
    return table.levels[param].index.get(default, 0) if default is not None else 0


def method(kind: str) -> str:
    """How the contrasts of a study of ``kind`` are made and their intervals taken ("" for description only)."""
    return {"grid": MATCHED, "random": BOOTSTRAP}.get(kind, DESCRIPTION)


def contrasts(
    table: TrialTable, trials: list[FrozenTrial], kind: str, seed: int = 0, noise: ImageNoise | None = None
) -> dict[tuple[str, int], Contrast]:
    """Every (parameter, level)'s contrast with its reference; ``trials`` are the table's rows, in order."""
    out = {}
    seeds = seed_matrix(trials)
    estimates = {}
    for p in table.params:
        ref = reference_level(table, p)
        label = table.levels[p].labels[ref]
        for level in range(len(table.levels[p].labels)):
            if kind == "grid":
                out[p, level], estimates[p, level] = _matched(table, p, level, ref, seeds, label, noise)
            elif kind == "random":
                out[p, level] = _bootstrap(table, p, level, ref, label, seed)
            elif kind == "oat":  # the oat table holds the changes; a level's mean mixes the other moves
                out[p, level] = Contrast(label, None, None, None, 0, None)
            else:
                out[p, level] = _difference(table, p, level, ref, label)
    family = {key: est for key, est in estimates.items() if est is not None}
    for key, est in family.items():
        low, high = est.interval(simultaneous(len(family)))
        out[key] = out[key]._replace(low=low, high=high)
    return out


class Given(NamedTuple):
    """One level of a parameter against its reference where another parameter holds one value."""

    given: str  # the other parameter
    given_value: str
    parameter: str
    value: str
    reference: str
    pairs: int
    change: float | None
    low: float | None  # the simultaneous interval (None: no interval, fewer than 3 seeds or no spread)
    high: float | None
    verdict: str


def given(
    table: TrialTable, trials: list[FrozenTrial], param: str, margin: float, noise: ImageNoise | None = None
) -> list[Given]:
    """``param``'s matched contrasts within each value of every other parameter (see the module), decided."""
    seeds = seed_matrix(trials)
    ref = reference_level(table, param)
    label = table.levels[param].labels[ref]
    found: list[tuple[Given, Estimate | None]] = []
    for q in (q for q in table.params if q != param):
        for at, value in enumerate(table.levels[q].labels):
            keep = table.codes[q] == at
            part = TrialTable(table.params, table.levels, {p: c[keep] for p, c in table.codes.items()},
                              table.values[keep])  # fmt: skip
            for level in (lv for lv in range(len(table.levels[param].labels)) if lv != ref):
                c, est = _matched(part, param, level, ref, None if seeds is None else seeds[keep], label, noise)
                row = Given(q, value, param, table.levels[param].labels[level], label, c.pairs, c.contrast,
                            None, None, UNDETERMINED)  # fmt: skip
                found.append((row, est))
    m = sum(est is not None for _, est in found)
    out = []
    for row, est in found:
        if est is not None:
            verdict, low, high = decide(est, m, margin)
            row = row._replace(low=low, high=high, verdict=verdict)
        out.append(row)
    return out


def seed_matrix(trials: list[FrozenTrial]) -> np.ndarray | None:
    """``[trial, seed]`` validation accuracies, failed seeds NaN, when every trial ran the same K >= 2 seeds."""
    first = trials[0].user_attrs.get("seeds") if trials else None
    if first is None or len(first) < 2 or any(t.user_attrs.get("seeds") != first for t in trials):
        return None
    values = np.array([records.seed_values(t) for t in trials], dtype=float)
    values[np.array([failed_seeds(v) for v in values])] = np.nan
    return values


def _difference(table: TrialTable, p: str, level: int, ref: int, label: str) -> Contrast:
    y, other = table.values[table.codes[p] == level], table.values[table.codes[p] == ref]
    if not len(y) or not len(other):
        return Contrast(label, None, None, None, len(y), None)
    return Contrast(label, float(y.mean() - other.mean()), None, None, len(y), None)


def _bootstrap(table: TrialTable, p: str, level: int, ref: int, label: str, seed: int) -> Contrast:
    y, other = table.values[table.codes[p] == level], table.values[table.codes[p] == ref]
    base = _difference(table, p, level, ref, label)
    if level == ref or len(y) < 2 or len(other) < 2:
        return base
    result = stats.bootstrap(
        (y, other),
        lambda a, b, axis=-1: a.mean(axis=axis) - b.mean(axis=axis),
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return base._replace(low=float(result.confidence_interval.low), high=float(result.confidence_interval.high))


def _matched(
    table: TrialTable, p: str, level: int, ref: int, seeds: np.ndarray | None, label: str, noise: ImageNoise | None
) -> tuple[Contrast, Estimate | None]:
    """The matched contrast, and its estimate over the seeds (None: no interval: K < 3 or no spread)."""
    others = [q for q in table.params if q != p]
    keys = [tuple(table.codes[q][i] for q in others) for i in range(len(table.values))]
    at_ref = {k: i for i, k in reversed(list(enumerate(keys))) if table.codes[p][i] == ref}
    pairs = [(i, at_ref[k]) for i, k in enumerate(keys) if table.codes[p][i] == level and k in at_ref]
    if not pairs:
        return Contrast(label, None, None, None, 0, None), None
    moved, base = np.array(pairs).T
    diff = table.values[moved] - table.values[base]
    contrast = float(diff.mean())
    wins = float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / len(diff))
    plain = Contrast(label, contrast, None, None, len(pairs), wins)
    if level == ref or seeds is None:
        return plain, None
    per_pair = seeds[moved] - seeds[base]
    counted = np.isfinite(per_pair).any(axis=0)
    per_seed = np.nanmean(per_pair[:, counted], axis=0)  # the contrast each training seed alone gives
    if len(per_seed) < MIN_SEEDS or np.ptp(per_seed) <= TOLERANCE:
        return plain, None
    images = 2 * noise.variance / len(pairs) if noise is not None else 0.0
    est = Estimate(float(per_seed.mean()), float(per_seed.var(ddof=1) / len(per_seed)), len(per_seed) - 1.0,
                   images, noise.df if noise is not None else np.inf)  # fmt: skip
    return plain._replace(contrast=est.change), est
