"""Accuracy against cost for any study: the Pareto fronts of validation accuracy against a network's
parameter count and against its training seconds, from what every trial stores.

A grid or oat study has one objective, yet each of its points stores its parameter count (exact)
and its training seconds as if trained alone (``records.cost_seconds``: measured per network, as
noisy as the machine), so its front is read here rather than searched for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.analysis.text import format_params, format_value, wrapped

COSTS: dict[str, Callable[[FrozenTrial], float | None]] = {  # cost name -> how a trial's is read
    "parameters": lambda t: t.user_attrs.get("parameter_count"),
    "seconds": records.cost_seconds,
}


class FrontPoint(NamedTuple):
    number: int
    accuracy: float
    cost: float
    params: dict[str, Any]


def pareto_front(trials: list[FrontPoint]) -> list[FrontPoint]:
    """The points no other beats on both (higher accuracy, lower cost), cheapest first."""
    if not trials:
        return []
    # Cheapest first; at equal cost the most accurate first, so that it alone of them is kept.
    order = np.lexsort((-np.array([t.accuracy for t in trials]), np.array([t.cost for t in trials])))
    front, best = [], -np.inf
    for i in order:
        if trials[i].accuracy > best:
            front.append(trials[i])
            best = trials[i].accuracy
    return front


def cost_points(trials: list[FrozenTrial], cost: str) -> list[FrontPoint]:
    """Complete trials with an accuracy and the cost ``cost`` (a key of ``COSTS``)."""
    points = []
    for t in trials:
        accuracy, value = records.accuracy(t), COSTS[cost](t)
        if t.state == TrialState.COMPLETE and accuracy is not None and value is not None:
            points.append(FrontPoint(t.number, float(accuracy), float(value), dict(t.params)))
    return points


def study_fronts(study: optuna.Study) -> dict[str, list[FrontPoint]]:
    """The front of accuracy against each cost, for the costs the study's trials store."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    fronts = {cost: pareto_front(cost_points(trials, cost)) for cost in COSTS}
    return {cost: front for cost, front in fronts.items() if front}


def fronts_text(fronts: dict[str, list[FrontPoint]]) -> str:
    """The fronts as plain tables, cheapest first."""
    blocks = []
    for cost, front in fronts.items():
        unit = "parameters" if cost == "parameters" else "training seconds"
        lines = [f"Pareto front: validation accuracy against {unit} ({len(front)} trials)"]
        same = {k: v for k, v in front[0].params.items() if all(p.params.get(k) == v for p in front)}
        if same:
            lines += wrapped(f"{'every trial of it' if len(front) > 1 else 'its trial'}: {format_params(same)}")
        lines.append(f"{'trial':>6}  {'accuracy':>8}  {unit:>16}  parameters of the trial")
        for p in front:
            shown = f"{p.cost:,.0f}" if cost == "parameters" else f"{p.cost:.2f}"
            own = {k: v for k, v in p.params.items() if k not in same}
            lines.append(f"{p.number:>6}  {p.accuracy:>8.4f}  {shown:>16}  {format_params(own)}".rstrip())
        blocks.append("\n".join(lines))
    note = (
        "seconds are each trial's training time as if trained alone (measured per network in its run): "
        "a front in seconds moves with the machine's load"
    )
    return "\n\n".join(blocks) + ("\n" + "\n".join(wrapped(note)) if "seconds" in fronts else "")



def fronts_json(fronts: dict[str, list[FrontPoint]]) -> dict[str, list[dict[str, Any]]]:
    return {cost: [p._asdict() for p in front] for cost, front in fronts.items()}


class CostChange(NamedTuple):
    """An oat move's change in cost from the baseline."""

    parameter: str
    value: Any
    parameters: float  # the network's parameter count, moved minus baseline (exact)
    seconds: float | None  # training seconds, moved minus baseline (one measurement each, no interval)


def oat_cost_changes(study: optuna.Study) -> list[CostChange]:
    """Each one-at-a-time move's change in parameters and seconds beside the baseline (point 0)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    baseline = next((t for t in trials if records.point(t) == 0), None)
    if study.user_attrs.get("kind") != "oat" or baseline is None:
        return []
    changes = []
    for t in sorted(trials, key=lambda t: t.number):
        moved = [k for k, v in t.params.items() if baseline.params.get(k) != v]
        if len(moved) != 1:
            continue
        base_s, s = records.cost_seconds(baseline), records.cost_seconds(t)
        changes.append(
            CostChange(
                moved[0],
                t.params[moved[0]],
                float(t.user_attrs.get("parameter_count", 0) - baseline.user_attrs.get("parameter_count", 0)),
                float(s - base_s) if s is not None and base_s is not None else None,
            )
        )
    return changes


def cost_changes_text(changes: list[CostChange]) -> str:
    lines = [
        "One at a time: change in cost from the baseline "
        "(parameters exact; seconds as if trained alone, per network)"
    ]
    lines.append(f"{'parameter':<14} {'value':<14} {'parameters':>12} {'seconds':>9}")
    for c in changes:
        seconds = f"{c.seconds:+.2f}" if c.seconds is not None else "-"
        lines.append(f"{c.parameter:<14} {format_value(c.value):<14} {c.parameters:>+12,.0f} {seconds:>9}")
    return "\n".join(lines)
