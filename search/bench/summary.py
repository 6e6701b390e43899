"""What replays say: what a user gets, paired comparisons of samplers, best-so-far, ranks, shares near the best.

The headline is the test accuracy of each repeat's best-validation trial (the point a
user would pick and deploy), against the trial count, beside the validation best-so-far
that the sampler selected by (biased upward: it is a maximum of noisy values). Samplers
run on the same repeat seeds, so they are compared paired by repeat: the mean
difference with its 95% t interval, and the probability of improvement (the share of
repeats where one is higher, ties counting half) with its Wilson interval.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from search.analysis.verdicts import wilson
from search.bench.replay import Run

TARGETS = (0.001, 0.002)  # 0.1 and 0.2 points of validation accuracy below the table's best
TIME_POINTS = 101
CHECKPOINTS = (10, 30, 100)  # trial counts the paired comparisons are given at (and the last)


@dataclass(frozen=True)
class SamplerSummary:
    """One sampler over its repeats. Arrays are ``[repeat, trial]`` or ``[repeat, time point]``."""

    name: str
    runs: list[Run]
    by_trial: np.ndarray
    test_of_best: np.ndarray  # [repeat, trial]: the test accuracy of the best-validation trial so far
    by_time: np.ndarray
    mean_rank: float
    within: dict[float, float]
    trials_to: dict[float, float | None]
    ask_seconds: float

    @property
    def final(self) -> np.ndarray:
        return self.by_trial[:, -1]


def best_so_far(run: Run) -> np.ndarray:
    """Best validation accuracy after each finished trial (0 until one completes)."""
    values = np.array([t.value if t.value is not None else 0.0 for t in run.finished()], dtype=float)
    return np.maximum.accumulate(np.concatenate([[0.0], values]))[1:]


def picked_test(run: Run) -> np.ndarray:
    """After each finished trial, the test accuracy of the best-validation trial so far (0 until one completes;
    the first of equal validation values is kept, as ``study.best_trial``)."""
    out, best, test = [], -np.inf, 0.0
    for t in run.finished():
        if t.value is not None and t.value > best:
            best, test = t.value, t.test if t.test is not None else 0.0
        out.append(test)
    return np.array(out, dtype=float)


def best_at_times(run: Run, times: np.ndarray) -> np.ndarray:
    """Best validation accuracy among the trials completed by each simulated time (0 before any)."""
    ends = np.array([t.end for t in run.trials])
    values = np.maximum.accumulate([t.value if t.value is not None else 0.0 for t in run.trials])
    index = np.searchsorted(ends, times, side="right")
    return np.where(index > 0, values[np.maximum(index - 1, 0)], 0.0)


def mean_interval(samples: np.ndarray, high: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and its 95% Student-t interval, ``[n, 2]``, cut at ``high`` (no sample exceeds it)."""
    mean = samples.mean(axis=0)
    if len(samples) < 2:
        return mean, np.stack([mean, mean], axis=-1)
    sem = stats.sem(samples, axis=0)
    half = np.where(sem > 0, sem * stats.t.ppf(0.975, len(samples) - 1), 0.0)
    return mean, np.stack([mean - half, np.minimum(mean + half, high)], axis=-1)


def summarize(runs: dict[str, list[Run]], best: float) -> tuple[dict[str, SamplerSummary], np.ndarray]:
    """Each sampler's summary, and the simulated times its time curves are taken at."""
    horizon = max(t.end for sampler in runs.values() for run in sampler for t in run.trials)
    times = np.linspace(0.0, horizon, TIME_POINTS)
    by_trial = {name: np.stack([best_so_far(r) for r in sampler]) for name, sampler in runs.items()}
    finals = np.stack([b[:, -1] for b in by_trial.values()])  # [sampler, repeat]
    ranks = stats.rankdata(-finals, axis=0).mean(axis=1)  # 1 is best; ties share their mean rank
    summaries = {}
    for (name, sampler), rank in zip(runs.items(), ranks, strict=True):
        curves = by_trial[name]
        reached = {d: curves >= best - d - 1e-9 for d in TARGETS}
        summaries[name] = SamplerSummary(
            name=name,
            runs=sampler,
            by_trial=curves,
            test_of_best=np.stack([picked_test(r) for r in sampler]),
            by_time=np.stack([best_at_times(r, times) for r in sampler]),
            mean_rank=float(rank),
            within={d: float(hit[:, -1].mean()) for d, hit in reached.items()},
            trials_to={d: _median_first(hit) for d, hit in reached.items()},
            ask_seconds=float(np.mean([r.ask_seconds / max(len(r.trials), 1) for r in sampler])),
        )
    return summaries, times


def _median_first(hit: np.ndarray) -> float | None:
    """Median over repeats of the first trial (1-based) that reached a target; None if most never did."""
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.inf)
    median = float(np.median(first))
    return median if np.isfinite(median) else None


class Paired(NamedTuple):
    """Sampler A against B, paired by repeat seed, on the test accuracy of each repeat's pick, at trial counts."""

    after: list[int]
    mean_difference: list[float]  # A minus B
    ci: list[tuple[float, float]]  # 95% paired t interval
    probability_of_improvement: list[float]  # share of repeats where A is higher, ties counting half
    probability_ci: list[tuple[float, float]]  # Wilson
    wins: list[int]
    ties: list[int]
    losses: list[int]


def checkpoints(trials: int) -> list[int]:
    """The trial counts comparisons are given at: ``CHECKPOINTS`` up to ``trials``, and ``trials``."""
    return sorted({c for c in CHECKPOINTS if c < trials} | {trials})


def paired(a: SamplerSummary, b: SamplerSummary) -> Paired:
    """A against B, repeat by repeat (the same seeds, in the same order)."""
    if [r.seed for r in a.runs] != [r.seed for r in b.runs]:
        raise ValueError(f"{a.name} and {b.name} ran different repeat seeds: they cannot be paired")
    after = checkpoints(a.test_of_best.shape[1])
    out = Paired(after, [], [], [], [], [], [], [])
    for n in after:
        diff = a.test_of_best[:, n - 1] - b.test_of_best[:, n - 1]
        mean, ci = mean_interval(diff[:, None])
        wins, ties = int((diff > 1e-12).sum()), int((np.abs(diff) <= 1e-12).sum())
        share = (wins + 0.5 * ties) / len(diff)
        out.mean_difference.append(float(mean[0]))
        out.ci.append((float(ci[0, 0]), float(ci[0, 1])))
        out.probability_of_improvement.append(share)
        out.probability_ci.append(wilson(wins + 0.5 * ties, len(diff)))
        out.wins.append(wins)
        out.ties.append(ties)
        out.losses.append(len(diff) - wins - ties)
    return out


def pairs(summaries: dict[str, SamplerSummary]) -> dict[str, Paired]:
    """Every pair of samplers, keyed ``"A-B"`` (A minus B), the one named later in the list first."""
    names = list(summaries)
    return {f"{b}-{a}": paired(summaries[b], summaries[a]) for a, b in itertools.combinations(names, 2)}


def to_json(summaries: dict[str, SamplerSummary], times: np.ndarray, table: dict[str, Any]) -> dict[str, Any]:
    """The replay as JSON: ``{"table": {..., "best": v, "best_test": t}, "samplers": {...}, "paired": {...}}``."""
    out: dict[str, Any] = {"table": table, "time_seconds": _round(times), "samplers": {}}
    best, best_test = table["best"], table["best_test"]
    for name, s in summaries.items():
        mean, ci = mean_interval(s.by_trial, best)
        test_mean, test_ci = mean_interval(s.test_of_best, best_test)
        time_mean, time_ci = mean_interval(s.by_time, best)
        repeats = len(s.runs)
        out["samplers"][name] = {
            "test_of_best_mean": _round(test_mean),
            "test_of_best_ci": _round(test_ci),
            "test_regret_mean": _round(best_test - test_mean),
            "best_so_far_mean": _round(mean),
            "best_so_far_ci": _round(ci),
            "regret_mean": _round(best - mean),
            "best_so_far_time_mean": _round(time_mean),
            "best_so_far_time_ci": _round(time_ci),
            "mean_rank": round(s.mean_rank, 3),
            **{f"within_{d}": s.within[d] for d in TARGETS},
            **{f"within_{d}_ci": _round(np.array(wilson(s.within[d] * repeats, repeats))) for d in TARGETS},
            **{f"trials_to_{d}": s.trials_to[d] for d in TARGETS},
            "ask_seconds_per_trial": round(s.ask_seconds, 5),
            "simulated_seconds_mean": round(float(np.mean([r.trials[-1].end for r in s.runs])), 2),
            "repeats": [{"seed": r.seed, "trials": [t.to_dict() for t in r.trials]} for r in s.runs],
        }
    out["paired"] = {
        key: {
            "after": p.after,
            "mean_difference": _round(np.array(p.mean_difference)),
            "ci": _round(np.array(p.ci)),
            "probability_of_improvement": _round(np.array(p.probability_of_improvement)),
            "probability_of_improvement_ci": _round(np.array(p.probability_ci)),
            "wins": p.wins,
            "ties": p.ties,
            "losses": p.losses,
        }
        for key, p in pairs(summaries).items()
    }
    return out


def _round(array: np.ndarray) -> list[Any]:
    return np.round(array, 6).tolist()
