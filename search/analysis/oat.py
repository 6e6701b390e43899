"""One value moved at a time from the baseline: each move's change, its simultaneous interval and its verdict.

The procedure, in order:

1. Failed seeds (``verdicts.failed_seeds``: NaN, or at chance while the point's other seeds are not)
   are named and left out of their pair on both sides; the test runs on the seeds left.
2. Each move's change is paired over the seeds both points ran (Welch's when they ran different ones).
   Where the moves' paired spreads are compatible (Bartlett's test, p >= 0.05), their variance is
   pooled over the moves (a pooled t; every difference holds the baseline's seeds, so its degrees
   of freedom come from Satterthwaite's formula, not the moves' sum), so that few seeds can say
   something; else each move's own spread is used.
3. The validation sample's own noise (``search.analysis.sampling``) is added to every change's
   variance: twice one point's validation-offset variance (the move's and the baseline's),
   Welch-Satterthwaite for the degrees of freedom.
4. The family is the m moves that are not identical to the baseline; Bonferroni: each interval at
   1 - 0.05/m; ``verdicts.decide`` gives the answer: matters (beyond +-margin), negligible (inside it
   by two one-sided tests at 0.05/m), nonzero (excludes 0 only), undetermined. Where K seeds can reach
   the level, the Wilcoxon signed-rank test (times m) must agree for a claim, so that one wild seed
   cannot carry it.
5. The same change on the test set, with its simultaneous interval: it replicates when that
   interval excludes 0 with the validation change's sign.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from optuna.trial import FrozenTrial

from search import records
from search.analysis import verdicts
from search.analysis.levels import levels
from search.analysis.sampling import ImageNoise, image_noise
from search.analysis.verdicts import Estimate

CONFIDENCE = 0.95
TEST_ATTR = "seed_test_accuracies"  # each seed's test accuracy, in seed order (search/records.py)


class OatChange(NamedTuple):
    """One value moved alone from the baseline: its change, tests, intervals, verdict and test-set replication."""

    parameter: str
    value: str
    seeds: int  # the seeds compared, failed ones left out
    paired: bool
    change: float  # the moved point's mean over those seeds minus the baseline's, on validation
    ci_low: float | None  # 95% interval, unadjusted
    ci_high: float | None
    p: float | None  # the t test's; None: no test, see ``note``
    p_adjusted: float | None  # Bonferroni over the study's moves
    adjusted_low: float | None  # the simultaneous (Bonferroni) interval the verdict reads
    adjusted_high: float | None
    verdict: str  # one of verdicts.VERDICTS
    note: str  # why there is no test or no claim, failed seeds left out; else ""
    test_change: float | None  # the same change on the test set, over the same seeds
    test_low: float | None  # its simultaneous interval
    test_high: float | None
    replicates: bool | None  # the test interval excludes 0 with the change's sign; None without test accuracies
    rank_p: float | None  # of a claim: Wilcoxon signed-rank p times m, where K can reach the level
    pooled: bool  # the variance is pooled over the moves


class FailedSeed(NamedTuple):
    """A seed left out: its trial, its point's parameters that differ from the baseline, the seed and its value."""

    trial: int
    point: str
    seed: int
    accuracy: float | None  # None for NaN


class OatFamily(NamedTuple):
    """The oat rows and how they were decided."""

    rows: list[OatChange]
    moves: int  # m: the family
    seeds: int  # K: the most seeds compared
    margin: float
    pooled: bool
    image_noise: ImageNoise | None
    failed: list[FailedSeed]


def _values(trial: FrozenTrial, attr: str) -> np.ndarray | None:
    values = records.seed_values(trial) if attr == "seed_values" else trial.user_attrs.get(attr)
    if values is None:
        return None
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _same_seeds(moved: FrozenTrial, base: FrozenTrial) -> bool:
    seeds = moved.user_attrs.get("seeds")
    return seeds is not None and seeds == base.user_attrs.get("seeds")


def _seed_ids(trial: FrozenTrial, k: int) -> list[int]:
    return list(trial.user_attrs.get("seeds") or range(1, k + 1))


def label(value: Any) -> str:
    return levels([value]).labels[0]


class _Side(NamedTuple):
    val: np.ndarray
    test: np.ndarray | None
    failed: np.ndarray


def _side(trial: FrozenTrial) -> _Side:
    val = _values(trial, "seed_values")
    assert val is not None
    test = _values(trial, TEST_ATTR)
    return _Side(val, test if test is not None and len(test) == len(val) else None, verdicts.failed_seeds(val))


def _estimate(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[Estimate | None, str]:
    return verdicts.paired_estimate(x, y) if paired else verdicts.welch_estimate(x, y)


def oat_family(complete: list[FrozenTrial], baseline: dict[str, Any], margin: float = verdicts.MARGIN) -> OatFamily:
    """Each value moved alone from the baseline, in the space's order, decided as the module says."""
    empty = OatFamily([], 0, 0, margin, False, None, [])
    base = next((t for t in complete if t.params == baseline), None)
    if base is None:
        return empty
    names = list(baseline)
    moves = []
    for t in complete:
        changed = [k for k, v in t.params.items() if baseline.get(k) != v]
        if len(changed) == 1:
            moves.append((changed[0], t))
    moves.sort(key=lambda move: names.index(move[0]))
    b = _side(base)
    failed = [FailedSeed(base.number, "baseline", s, None if np.isnan(v) else float(v))
              for s, v, f in zip(_seed_ids(base, len(b.val)), b.val, b.failed, strict=True) if f]  # fmt: skip
    work = []  # (param, trial, side, paired, keep-masks, estimate, why, identical)
    for param, t in moves:
        a, paired = _side(t), _same_seeds(t, base)
        own = [FailedSeed(t.number, f"{param}={label(t.params[param])}", s, None if np.isnan(v) else float(v))
               for s, v, f in zip(_seed_ids(t, len(a.val)), a.val, a.failed, strict=True) if f]  # fmt: skip
        failed += own
        identical = paired and np.array_equal(a.val, b.val, equal_nan=True)
        if paired:
            keep_a = keep_b = ~a.failed & ~b.failed
        else:
            keep_a, keep_b = ~a.failed, ~b.failed
        est, why = _estimate(a.val[keep_a], b.val[keep_b], paired)
        if identical:
            same_test = (a.test is None and b.test is None) or (
                a.test is not None and b.test is not None and np.array_equal(a.test, b.test, equal_nan=True))
            est, why = (None, "") if same_test else (
                None, "every seed's validation accuracy is the baseline's, its test accuracy is not")
            identical = same_test
        work.append((param, t, a, paired, keep_a, keep_b, est, why, identical, own))
    m = sum(1 for w in work if not w[8])
    # Pooling: the paired moves' spreads, when Bartlett finds them compatible.
    pairs = [(w[2].val[w[4]], b.val[w[5]]) for w in work if w[3] and w[6] is not None]
    pooled = len(pairs) >= 2 and verdicts.bartlett_compatible([x - y for x, y in pairs])
    if pooled:
        pooled_var, dof = _pooled(pairs)
    noise = image_noise([_side(t).val for t in [base, *(t for _, t in moves)]],
                        [_side(t).test for t in [base, *(t for _, t in moves)]])  # fmt: skip
    rows = []
    for param, t, a, paired, keep_a, keep_b, est, why, identical, own in work:
        row_pooled = bool(pooled and paired and est is not None)
        if est is not None and row_pooled:
            est = est._replace(var_seeds=pooled_var / int(keep_a.sum()), df_seeds=dof)
        if est is not None and noise is not None:
            est = est._replace(var_images=2 * noise.variance, df_images=noise.df)
        verdict, low, high = (verdicts.IDENTICAL, None, None) if identical else verdicts.decide(est, m, margin)
        rank_p = None  # asked of claims only: it can only take one back
        if verdict in verdicts.CLAIMS and paired:
            rank_p = verdicts.rank_check(a.val[keep_a] - b.val[keep_b], m)
        agrees = rank_p is None or rank_p < verdicts.ALPHA
        if not agrees:
            verdict, low, high = verdicts.decide(est, m, margin, agrees)
        notes = [why] if why else []
        if est is not None and not agrees and (low > 0 or high < 0):
            notes.append(f"the rank test does not agree (Wilcoxon p_adj {rank_p:.3f})")
        left_out = [f"seed {f.seed}" for f in own]
        if left_out and not identical:
            notes.append("failed, left out with the baseline's: " + ", ".join(left_out))
        ci = est.interval(CONFIDENCE) if est is not None else (None, None)
        p = est.p() if est is not None else None
        test_change, test_low, test_high, replicates = _replication(a, b, keep_a, keep_b, paired, noise, m,
                                                                    est.change if est else None)  # fmt: skip
        change = 0.0 if identical else (est.change if est is not None else _mean_change(a, b, keep_a, keep_b))
        rows.append(OatChange(
            param, label(t.params[param]), int(keep_a.sum()), paired, change, ci[0], ci[1], p,
            None if p is None else min(1.0, m * p), None if est is None else low, None if est is None else high,
            verdict, "; ".join(notes), test_change, test_low, test_high, replicates, rank_p, row_pooled,
        ))  # fmt: skip
    seeds = max((r.seeds for r in rows), default=0)
    return OatFamily(rows, m, seeds, margin, pooled, noise, failed)


def _pooled(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """The paired differences' variance pooled over the moves, and its degrees of freedom.

    Every difference holds the baseline's seeds, so the pooled variance carries the baseline's
    own sample variance b (K - 1 degrees of freedom) whole, and only the moves' part a averages
    out: Satterthwaite's df (a + b)^2 (K - 1) / (a^2/m + b^2 + 2ab/m), with b the baseline's variance
    less its covariance with the moves (a per-seed effect every point shares), a the rest.
    """
    m, k = len(pairs), min(len(x) for x, _ in pairs)
    pooled = float(np.mean([(x - y).var(ddof=1) for x, y in pairs]))
    shared = float(np.mean([np.cov(x, y)[0, 1] for x, y in pairs]))
    b = min(pooled, max(0.0, float(np.mean([y.var(ddof=1) for _, y in pairs])) - shared))
    a = pooled - b
    return pooled, float((a + b) ** 2 * (k - 1) / (a * a / m + b * b + 2 * a * b / m))


def _mean_change(a: _Side, b: _Side, keep_a: np.ndarray, keep_b: np.ndarray) -> float:
    x, y = a.val[keep_a], b.val[keep_b]
    return float(x.mean() - y.mean()) if len(x) and len(y) else float("nan")


def _replication(
    a: _Side, b: _Side, keep_a: np.ndarray, keep_b: np.ndarray, paired: bool, noise: ImageNoise | None, m: int,
    change: float | None,
) -> tuple[float | None, float | None, float | None, bool | None]:
    """The change on the test set over the same seeds, its simultaneous interval, and whether it replicates."""
    if a.test is None or b.test is None:
        return None, None, None, None
    x, y = a.test[keep_a], b.test[keep_b]
    finite = np.isfinite(x) & np.isfinite(y) if paired else None
    if finite is not None:
        x, y = x[finite], y[finite]
    else:
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not len(x) or not len(y):
        return None, None, None, None
    est, _ = _estimate(x, y, paired)
    if est is None:
        value = float(x.mean() - y.mean())
        return value, None, None, None
    if noise is not None:
        est = est._replace(var_images=2 * noise.variance, df_images=noise.df)
    low, high = est.interval(verdicts.simultaneous(m))
    replicates = None if change is None else bool((low > 0 and change > 0) or (high < 0 and change < 0))
    return est.change, low, high, replicates


def method(family: OatFamily) -> str:
    """The short footnote under the oat table: what decides, in lines under 120 characters."""
    if not family.rows:
        return ""
    m, level = family.moves, verdicts.simultaneous(family.moves)
    noise = family.image_noise
    images = (f"+ validation-image noise (sd {np.sqrt(2 * noise.variance):.4f} per change, from {noise.points} "
              "points' validation-test gaps)" if noise is not None else
              "no validation-image noise (no test accuracies stored): intervals too narrow")  # fmt: skip
    k_rank = next((k for k in range(1, 64) if verdicts.rank_reaches(k, m)), 0)
    base_failed = [f"seed {f.seed}" for f in family.failed if f.point == "baseline"]
    failed = [f"the baseline's failed {', '.join(base_failed)}: left out of every pair"] if base_failed else []
    return "\n".join([*failed,
        f"K = {family.seeds} seeds, m = {m} moves, margin +-{family.margin:.4f}; Bonferroni {level:.2%} intervals: "
        f"t over seeds{' (pooled over moves)' if family.pooled else ''}",
        f"  {images}",
        "matters: interval beyond +-margin; nonzero: excludes 0, not beyond; negligible: TOST at 0.05/m inside "
        "+-margin",
        f"Wilcoxon must agree for a claim at K >= {k_rank}; test: replicates when its interval excludes 0 alike. "
        "--explain for more",
    ])  # fmt: skip
