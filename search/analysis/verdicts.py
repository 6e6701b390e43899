"""Verdicts you can trust: a change's estimate with its error, and the answer a family of them allows.

- ``Estimate``: a change, the variance of its seed mean (with degrees of freedom) and the
  variance the validation images add (with theirs), joined by Welch-Satterthwaite;
- ``decide``: ``matters`` (the simultaneous interval lies entirely beyond +-margin: a
  minimum-effect test), ``negligible`` (inside +-margin by two one-sided tests, each at
  alpha/m), ``nonzero`` (the simultaneous interval excludes 0 but does not lie beyond the
  margin), ``undetermined``; ``identical`` where every seed's run is the other's;
- ``failed_seeds``: seeds at chance or NaN, left out of their comparison;
- ``rank_check``: the Wilcoxon signed-rank test beside the t test, where K seeds can reach the level;
- ``permutation_max``, ``wilson``: a family's permutation null and a share's interval.

Simultaneous means Bonferroni over the study's m comparisons: each interval at 1 - alpha/m.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import special, stats

ALPHA = 0.05
MARGIN = 0.002  # 20 images in 10,000: a change smaller than this is negligible by default
MAX_MARGIN = 0.1
CHANCE = 0.2  # validation accuracy below this is no better than guessing among ten digits
SAME = "the same runs to the last digit"
TOLERANCE = 1e-9  # differences of quantized accuracies closer than this are equal (float rounding, not data)
MIN_SEEDS = 3  # with fewer, a t test has one degree of freedom and says nothing useful
IDENTICAL, NEGLIGIBLE, MATTERS, NONZERO, UNDETERMINED = "identical", "negligible", "matters", "nonzero", "undetermined"
VERDICTS = (MATTERS, NONZERO, NEGLIGIBLE, UNDETERMINED, IDENTICAL)
CLAIMS = (MATTERS, NONZERO)  # the answers that say a change is not zero


class Estimate(NamedTuple):
    """A change with the two parts of its error: the seeds' (over df_seeds) and the validation images' (df_images)."""

    change: float
    var_seeds: float  # variance of the seed mean of the change
    df_seeds: float
    var_images: float = 0.0  # variance the validation sample adds (0: not estimated)
    df_images: float = np.inf

    @property
    def se(self) -> float:
        return float(np.sqrt(self.var_seeds + self.var_images))

    @property
    def df(self) -> float:
        """Welch-Satterthwaite's degrees of freedom of the sum of the two variances."""
        a, b = self.var_seeds, self.var_images
        if b == 0:
            return self.df_seeds
        images = b * b / self.df_images if np.isfinite(self.df_images) else 0.0
        return float((a + b) ** 2 / (a * a / self.df_seeds + images))

    def interval(self, confidence: float) -> tuple[float, float]:
        half = float(special.stdtrit(self.df, 0.5 + confidence / 2)) * self.se
        return self.change - half, self.change + half

    def p(self) -> float:
        """Two-sided p of the change against 0."""
        return float(2 * special.stdtr(self.df, -abs(self.change) / self.se))


def simultaneous(m: int) -> float:
    """The confidence of each of m Bonferroni intervals that hold together with 95%."""
    return 1 - ALPHA / max(m, 1)


def decide(est: Estimate | None, m: int, margin: float, rank_agrees: bool = True) -> tuple[str, float, float]:
    """The verdict of one of m comparisons, and its simultaneous interval.

    ``matters``: the interval at 1 - alpha/m lies beyond +-margin; ``negligible``: the interval
    at 1 - 2 alpha/m (two one-sided tests at alpha/m) lies inside +-margin; ``nonzero``: the
    simultaneous interval excludes 0; else ``undetermined``. A claim (matters, nonzero) needs
    ``rank_agrees`` (the rank test's own verdict where K allows one).
    """
    if est is None:
        return UNDETERMINED, np.nan, np.nan
    low, high = est.interval(simultaneous(m))
    tost_low, tost_high = est.interval(1 - 2 * ALPHA / max(m, 1))
    if rank_agrees and (low > margin or high < -margin):
        return MATTERS, low, high
    if -margin < tost_low and tost_high < margin:
        return NEGLIGIBLE, low, high
    if rank_agrees and (low > 0 or high < 0):
        return NONZERO, low, high
    return UNDETERMINED, low, high


def failed_seeds(values: Sequence[float]) -> np.ndarray:
    """Which seeds failed: NaN, or at chance while another seed of the point is not.

    A point whose every seed is at chance has chance as its result (the value collapses the
    network), so its seeds stay; a NaN never does.
    """
    x = np.asarray(values, dtype=float)
    nan = np.isnan(x)
    low = ~nan & (x < CHANCE)
    working = ~nan & ~low
    return nan | (low & working.any())


def paired_estimate(x: np.ndarray, y: np.ndarray) -> tuple[Estimate | None, str]:
    """The paired change mean(x - y) over seeds, or None and why there is no test."""
    d = x - y
    if len(d) < MIN_SEEDS:
        return None, f"{len(d)} seed(s): fewer than {MIN_SEEDS}"
    if np.ptp(d) <= TOLERANCE:
        return None, f"every seed differs by {float(d.mean()):+.4f}: no variance to test"
    return Estimate(float(d.mean()), float(d.var(ddof=1) / len(d)), len(d) - 1.0), ""


def welch_estimate(x: np.ndarray, y: np.ndarray) -> tuple[Estimate | None, str]:
    """Welch's unpaired change mean(x) - mean(y) (the points ran different seeds), or None and why."""
    if min(len(x), len(y)) < MIN_SEEDS:
        return None, f"{min(len(x), len(y))} seed(s): fewer than {MIN_SEEDS}"
    a, b = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if a + b <= TOLERANCE**2:
        return None, "no variance over the seeds to test"
    df = (a + b) ** 2 / (a * a / (len(x) - 1) + b * b / (len(y) - 1))
    return Estimate(float(x.mean() - y.mean()), float(a + b), float(df)), ""


def rank_reaches(k: int, m: int) -> bool:
    """Whether the exact Wilcoxon signed-rank test on k differences can reach the level alpha/m (p >= 2/2**k)."""
    return k > 0 and 2.0 / 2**k <= ALPHA / max(m, 1)


def rank_check(d: np.ndarray, m: int) -> float | None:
    """The Wilcoxon signed-rank p of the differences ``d``, times m (Bonferroni), or None where K cannot reach it."""
    if not rank_reaches(len(d), m) or np.all(d == 0):
        return None
    return float(min(1.0, m * stats.wilcoxon(d, zero_method="pratt").pvalue))


def bartlett_compatible(groups: Sequence[np.ndarray]) -> bool:
    """Whether the groups' variances are compatible: Bartlett's test (as ``scipy.stats.bartlett``,
    written out for speed) at p >= 0.05, every group of two or more with a positive variance."""
    usable = [g for g in groups if len(g) >= 2]
    if len(usable) < 2 or any(np.ptp(g) <= TOLERANCE for g in usable):
        return False
    dof = np.array([len(g) - 1.0 for g in usable])
    var = np.array([g.var(ddof=1) for g in usable])
    pooled = float((dof * var).sum() / dof.sum())
    k = len(usable)
    statistic = (dof.sum() * np.log(pooled) - (dof * np.log(var)).sum()) / (
        1 + ((1 / dof).sum() - 1 / dof.sum()) / (3 * (k - 1))
    )
    return bool(special.chdtrc(k - 1, statistic) >= ALPHA)


def bonferroni(p: Sequence[float | None], m: int) -> list[float | None]:
    """Bonferroni's adjusted p values: m p, at most 1; None stays None."""
    return [None if v is None else float(min(1.0, m * v)) for v in p]


def holm(p: Sequence[float | None]) -> list[float | None]:
    """Holm's adjusted p values (step-down, monotone, at most 1); None stays None and counts in the family."""
    m = len(p)
    values = np.array([1.0 if v is None else v for v in p])
    order = np.argsort(values, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * values[order]))
    out = np.empty(m)
    out[order] = adjusted
    return [None if v is None else float(a) for v, a in zip(p, out, strict=True)]


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


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a share."""
    ci = stats.binomtest(successes, n).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)
