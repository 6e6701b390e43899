"""How the project writes values, parameters, trial counts and the best trial, in one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from search import records

ACCURACY_PLACES = 4  # accuracies on 10,000 validation images differ in the fourth place


def format_value(value: Any) -> str:
    """A parameter value: floats to 3 significant digits, everything else as is."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_accuracy(value: float | None) -> str:
    """An accuracy to four places, ``-`` when there is none."""
    return "-" if value is None else f"{value:.{ACCURACY_PLACES}f}"


def format_params(params: dict[str, Any]) -> str:
    """``name=value`` pairs on one line."""
    return " ".join(f"{k}={format_value(v)}" for k, v in params.items())


def state_counts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """How many trials are in each state, every state named (zeros included), in Optuna's order."""
    counts = {s.name: 0 for s in TrialState}
    for t in trials:
        counts[t.state.name] += 1
    return counts


def format_counts(counts: dict[str, int]) -> str:
    """``12 complete, 3 pruned`` (states with no trial left out), or ``no trials``."""
    return ", ".join(f"{n} {state.lower()}" for state, n in counts.items() if n) or "no trials"


def best_line(trial: FrozenTrial) -> str:
    """``trial 7: validation accuracy 0.9805, test accuracy 0.9787`` (the test part when stored)."""
    test = records.test_accuracy(trial)
    return f"trial {trial.number}: validation accuracy {format_accuracy(trial.value)}" + (
        f", test accuracy {format_accuracy(test)}" if test is not None else ""
    )
