"""Verdicts you can trust: tests over a study's comparisons with the family-wise error held at 5%.

- ``paired_test``: a paired t test over training seeds (Welch's when the seeds differ),
  with its p value and the interval at any confidence;
- ``holm``: Holm's step-down adjustment of a family of p values;
- ``verdict``: ``matters``, ``negligible`` (an equivalence test against a margin),
  ``undetermined``, or ``identical``, from the adjusted test and the Bonferroni interval;
- ``permutation_max``: the seeded null distribution of the largest statistic of a family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

ALPHA = 0.05
MARGIN = 0.002  # 20 images in 10,000: a change smaller than this is negligible by default
SAME = "the same runs to the last digit"
TOLERANCE = 1e-9  # differences of quantized accuracies closer than this are equal (float rounding, not data)
MIN_SEEDS = 3  # with fewer, a t test has one degree of freedom and says nothing useful
IDENTICAL, NEGLIGIBLE, MATTERS, UNDETERMINED = "identical", "negligible", "matters", "undetermined"
VERDICTS = (MATTERS, NEGLIGIBLE, UNDETERMINED, IDENTICAL)


class PairedTest(NamedTuple):
    """One comparison over seeds: its size, p value and degrees of freedom, or why it has none."""

    seeds: int
    paired: bool
    change: float  # mean of a minus mean of b
    p: float | None
    why: str  # "" when the test ran; else why there is no test

    @property
    def identical(self) -> bool:
        """Every seed's run is the other's to the last digit (e.g. cross_entropy against nll)."""
        return self.why == SAME


def paired_test(a: Sequence[float], b: Sequence[float], paired: bool) -> PairedTest:
    """The t test of mean(a) - mean(b): paired over seeds when ``paired``, else Welch's.

    No test (``p`` None, ``why`` says so) with fewer than ``MIN_SEEDS`` seeds, a NaN
    value (a diverged seed), or paired differences of zero variance that are not all zero.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    change = float(x.mean() - y.mean())
    seeds = len(x) if paired else min(len(x), len(y))
    if np.isnan(x).any() or np.isnan(y).any():
        return PairedTest(seeds, paired, change, None, "a seed diverged")
    if paired and np.all(x == y):
        return PairedTest(seeds, paired, 0.0, None, SAME)
    if seeds < MIN_SEEDS:
        return PairedTest(seeds, paired, change, None, f"{seeds} seed(s): fewer than {MIN_SEEDS}")
    if paired and np.ptp(x - y) <= TOLERANCE:
        return PairedTest(seeds, paired, change, None, f"every seed differs by {change:+.4f}: no variance to test")
    if not paired and np.ptp(x) <= TOLERANCE and np.ptp(y) <= TOLERANCE:
        return PairedTest(seeds, paired, change, None, "no variance over the seeds to test")
    result = stats.ttest_rel(x, y) if paired else stats.ttest_ind(x, y, equal_var=False)
    return PairedTest(seeds, paired, change, float(result.pvalue), "")


def t_interval(
    a: Sequence[float], b: Sequence[float], paired: bool, confidence: float
) -> tuple[float | None, float | None]:
    """The t interval of mean(a) - mean(b) at ``confidence`` (None, None with fewer than two seeds or a NaN)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(x), len(y)) < 2 or np.isnan(x).any() or np.isnan(y).any():
        return None, None
    if paired:
        diff = x - y
        if np.ptp(diff) <= TOLERANCE:
            return float(diff.mean()), float(diff.mean())
        ci = stats.ttest_1samp(diff, 0.0).confidence_interval(confidence)
    else:
        if np.ptp(x) <= TOLERANCE and np.ptp(y) <= TOLERANCE:
            return float(x.mean() - y.mean()), float(x.mean() - y.mean())
        ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def holm(p: Sequence[float | None]) -> list[float | None]:
    """Holm's adjusted p values (step-down, monotone, at most 1); None stays None and counts in the family.

    A comparison without a test is one of the family all the same: leaving it out would
    let a study with untestable moves claim more of the others.
    """
    m = len(p)
    values = np.array([1.0 if v is None else v for v in p])
    order = np.argsort(values, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * values[order]))
    out = np.empty(m)
    out[order] = adjusted
    return [None if v is None else float(a) for v, a in zip(p, out, strict=True)]


def verdict(test: PairedTest, p_adjusted: float | None, low: float | None, high: float | None, margin: float) -> str:
    """``identical`` (every seed's difference is zero), else ``negligible`` when the adjusted interval
    lies inside +-``margin``, ``matters`` when ``p_adjusted`` < 0.05 and the adjusted interval excludes zero
    (so that a ``matters`` never shows an interval holding zero: Holm can reject where Bonferroni's
    interval still holds it), else ``undetermined``."""
    if test.identical:
        return IDENTICAL
    if test.p is None or p_adjusted is None or low is None or high is None:
        return UNDETERMINED
    inside = -margin <= low and high <= margin
    if inside:
        return NEGLIGIBLE
    return MATTERS if p_adjusted < ALPHA and (high < 0 or low > 0) else UNDETERMINED


def permutation_max(
    statistics: Callable[[np.ndarray], np.ndarray], y: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """The largest of ``statistics(y)`` under ``resamples`` seeded shuffles of ``y``: the family's null."""
    rng = np.random.default_rng(seed)
    return np.array([float(np.max(statistics(rng.permutation(y)), initial=0.0)) for _ in range(resamples)])


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a share ``successes / n`` ((0, 1) for n = 0)."""
    if n == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
