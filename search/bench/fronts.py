"""What multi-objective replays say: the hypervolume of the test accuracy of each repeat's selected front.

A repeat's selected front, after N finished trials, is the set of its complete trials that
no other beats on both validation accuracy (higher) and cost (lower): what the study's
``best_trials`` would hand a user. Its worth is the hypervolume of those trials' **test**
accuracies against their costs, from the reference point (accuracy 0, 1.1 times the table's
largest cost), as a share of the table's true front (every grid point by test accuracy and
cost), which no sampler can pass. Samplers are compared paired by repeat seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from search.bench.problem import TableProblem
from search.bench.replay import Run
from search.space import grid_points

REFERENCE_FACTOR = 1.1  # the reference cost: this times the table's largest


def hypervolume(accuracy: np.ndarray, cost: np.ndarray, reference_cost: float) -> float:
    """The area that the points (maximize ``accuracy``, minimize ``cost``) dominate above (0, reference_cost)."""
    accuracy, cost = np.asarray(accuracy, float), np.asarray(cost, float)
    keep = (cost < reference_cost) & (accuracy > 0)
    accuracy, cost = accuracy[keep], cost[keep]
    order = np.lexsort((-accuracy, cost))  # cheapest first
    best = np.maximum.accumulate(accuracy[order]) if len(order) else np.array([])
    gains = np.diff(np.concatenate([[0.0], best]))
    return float(np.sum((reference_cost - cost[order]) * gains))


def selected_front(values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """A mask of the points no other beats on both (higher value, lower cost)."""
    beaten = (values[None, :] >= values[:, None]) & (costs[None, :] <= costs[:, None])
    strictly = (values[None, :] > values[:, None]) | (costs[None, :] < costs[:, None])
    return ~np.any(beaten & strictly, axis=1)


def run_hypervolumes(run: Run, counts: list[int], reference_cost: float) -> list[float]:
    """The hypervolume of the selected front's test accuracies after each of ``counts`` finished trials."""
    finished = run.finished()
    out = []
    for n in counts:
        done = [t for t in finished[:n] if t.state == "COMPLETE" and t.value is not None and t.cost is not None]
        if not done:
            out.append(0.0)
            continue
        values, costs = np.array([t.value for t in done]), np.array([t.cost for t in done])
        tests = np.array([t.test if t.test is not None else 0.0 for t in done])
        mask = selected_front(values, costs)
        out.append(hypervolume(tests[mask], costs[mask], reference_cost))
    return out


def true_front(problem: TableProblem, cost: str) -> tuple[float, float]:
    """The table's largest cost and the hypervolume of its true front (every grid point's test accuracy)."""
    points = grid_points(problem.grid(), 0)
    tests = np.array([problem.test_accuracy(p) or 0.0 for p in points])
    costs = np.array([problem.cost(p, cost) for p in points])
    reference = REFERENCE_FACTOR * float(costs.max())
    return reference, hypervolume(tests, costs, reference)


def summarize_fronts(runs: dict[str, list[Run]], problem: TableProblem, cost: str, trials: int) -> dict[str, Any]:
    """Per sampler, the hypervolume share of the true front (mean and 95% t interval over repeats) after
    10, 30, 100 (those below ``trials``) and ``trials`` trials; and every pair, paired by repeat seed."""
    counts = sorted({c for c in (10, 30, 100) if c < trials} | {trials})
    reference, limit = true_front(problem, cost)
    shares = {
        name: np.array([run_hypervolumes(r, counts, reference) for r in sorted(rs, key=lambda r: r.seed)]) / limit
        for name, rs in runs.items()
    }
    seeds = {name: [r.seed for r in sorted(rs, key=lambda r: r.seed)] for name, rs in runs.items()}
    out: dict[str, Any] = {
        "objectives": ["accuracy", cost],
        "reference_point": [0.0, reference],
        "true_front_hypervolume": limit,
        "after": counts,
        "samplers": {
            name: {"hypervolume_share_mean": _mean(s), "hypervolume_share_ci": _ci(s)} for name, s in shares.items()
        },
        "paired": {},
    }
    names = list(runs)
    for i, b in enumerate(names):
        for a in names[i + 1 :]:
            if seeds[a] != seeds[b]:
                continue
            diff = shares[a] - shares[b]
            out["paired"][f"{a}-{b}"] = {"after": counts, "mean_difference": _mean(diff), "ci": _ci(diff)}
    return out


def _mean(samples: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in samples.mean(axis=0)]


def _ci(samples: np.ndarray) -> list[list[float | None]]:
    n = samples.shape[0]
    if n < 2:
        return [[None, None] for _ in range(samples.shape[1])]
    half = stats.t.ppf(0.975, n - 1) * samples.std(axis=0, ddof=1) / np.sqrt(n)
    mean = samples.mean(axis=0)
    return [[round(float(m - h), 5), round(float(m + h), 5)] for m, h in zip(mean, half, strict=True)]


def fronts_text(summary: dict[str, Any]) -> str:
    """The hypervolume shares as a table, then the paired differences."""
    counts = summary["after"]
    lines = [
        f"hypervolume of the test accuracy of each repeat's selected front against {summary['objectives'][1]}, "
        f"as a share of the table's true front (reference point {summary['reference_point'][1]:,.4g}); "
        "mean and 95% t interval over repeats",
        "sampler   " + "".join(f"{'after ' + str(c):>26}" for c in counts),
    ]
    for name, s in summary["samplers"].items():
        pairs = zip(s["hypervolume_share_mean"], s["hypervolume_share_ci"], strict=True)
        cells = [f"{m:.4f} [{lo:.4f}, {hi:.4f}]" if lo is not None else f"{m:.4f}" for m, (lo, hi) in pairs]
        lines.append(f"{name:<10}" + "".join(f"{c:>26}" for c in cells))
    if summary["paired"]:
        lines.append("paired by repeat seed, A - B:")
        for pair, p in summary["paired"].items():
            cells = [f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]" if lo is not None else f"{m:+.4f}"
                     for m, (lo, hi) in zip(p["mean_difference"], p["ci"], strict=True)]  # fmt: skip
            lines.append(f"{pair:<18}" + "".join(f"{c:>28}" for c in cells))
    return "\n".join(lines)
