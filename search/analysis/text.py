"""How the project writes values, parameters, trial counts and the best trial, in one place."""

from __future__ import annotations

import textwrap
from typing import Any

from optuna.trial import FrozenTrial

from search import records

ACCURACY_PLACES = 4  # accuracies on 10,000 validation images differ in the fourth place
WIDTH = 120  # a terminal line


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


def best_line(trial: FrozenTrial) -> str:
    """``trial 7: validation accuracy 0.9805, test accuracy 0.9787`` (the test part when stored)."""
    test = records.test_accuracy(trial)
    return f"trial {trial.number}: validation accuracy {format_accuracy(records.accuracy(trial))}" + (
        f", test accuracy {format_accuracy(test)}" if test is not None else ""
    )


def wrapped(text: str, width: int = WIDTH) -> list[str]:
    """``text``'s lines, each longer than ``width`` broken at spaces (continued lines indented)."""
    out = []
    for line in text.splitlines():
        out += textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return out
