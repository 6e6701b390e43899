"""Grid, random, TPE and one-at-a-time hyperparameter studies of MNIST networks, on Optuna.

The names below load their module when first used, so that ``python -m search --help``
imports neither torch nor plotly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.space import REGULARIZATION, SEVEN, Parameter, distributions, grid_points, oat_points, search_space
    from search.spec import KINDS, StudySpec

_HOME = {
    **dict.fromkeys(
        ("REGULARIZATION", "SEVEN", "Parameter", "distributions", "grid_points", "oat_points", "search_space"),
        "search.space",
    ),
    "KINDS": "search.spec",
    "StudySpec": "search.spec",
}

__all__ = [
    "KINDS",
    "Parameter",
    "REGULARIZATION",
    "SEVEN",
    "StudySpec",
    "distributions",
    "grid_points",
    "oat_points",
    "search_space",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
