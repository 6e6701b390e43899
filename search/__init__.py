"""Grid, random, TPE and one-at-a-time hyperparameter studies of MNIST networks, on Optuna.

The names below load their module when first used, so that ``python -m search --help``
imports neither torch nor plotly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.lazy import lazy_names

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


__getattr__ = lazy_names(__name__, _HOME)
