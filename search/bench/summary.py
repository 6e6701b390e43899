"""What replays say: best-so-far against trials and simulated time, ranks, shares near the table's best."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from search.bench.replay import Run

TARGETS = (0.001, 0.002)  # 0.1 and 0.2 points of validation accuracy below the table's best
TIME_POINTS = 101


@dataclass(frozen=True)
class SamplerSummary:
    """One sampler over its repeats. Arrays are ``[repeat, trial]`` or ``[repeat, time point]``."""

    name: str
    runs: list[Run]
    by_trial: np.ndarray
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


def to_json(summaries: dict[str, SamplerSummary], times: np.ndarray, table: dict[str, Any]) -> dict[str, Any]:
    """The replay as JSON: ``{"table": {..., "best": v}, "samplers": {name: {...}}}``."""
    out: dict[str, Any] = {"table": table, "time_seconds": _round(times), "samplers": {}}
    best = table["best"]
    for name, s in summaries.items():
        mean, ci = mean_interval(s.by_trial, best)
        time_mean, time_ci = mean_interval(s.by_time, best)
        out["samplers"][name] = {
            "best_so_far_mean": _round(mean),
            "best_so_far_ci": _round(ci),
            "regret_mean": _round(best - mean),
            "best_so_far_time_mean": _round(time_mean),
            "best_so_far_time_ci": _round(time_ci),
            "mean_rank": round(s.mean_rank, 3),
            **{f"within_{d}": s.within[d] for d in TARGETS},
            **{f"trials_to_{d}": s.trials_to[d] for d in TARGETS},
            "ask_seconds_per_trial": round(s.ask_seconds, 5),
            "simulated_seconds_mean": round(float(np.mean([r.trials[-1].end for r in s.runs])), 2),
            "repeats": [{"seed": r.seed, "trials": [t.to_dict() for t in r.trials]} for r in s.runs],
        }
    return out


def _round(array: np.ndarray) -> list[Any]:
    return np.round(array, 6).tolist()
