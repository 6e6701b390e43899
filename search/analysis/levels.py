"""A parameter's levels: its values when they are few, else quantile bins of them.

Grid and one-at-a-time studies hold three values per parameter; random and TPE
studies draw continuous values, nearly every one its own, which would make one legend
entry or one table row per trial. Those are cut into bins that hold about the same
number of trials each (terciles), labelled by the smallest and largest value inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from search.analysis.text import format_value

MAX_VALUES = 5  # up to this many distinct values are shown one by one
BINS = 3
BINNING = f"{BINS} quantile bins (each about a third of the trials), labelled by the values inside"


class Levels(NamedTuple):
    """The levels of one parameter: their labels in order, and each value's level."""

    labels: list[str]
    index: dict[Any, int]
    binned: bool

    @property
    def binning(self) -> str:
        """How the levels were made, in words."""
        return BINNING if self.binned else "each value"

    def codes(self, values: Sequence[Any]) -> np.ndarray:
        """Each value's level, as integers."""
        return np.array([self.index[v] for v in values], dtype=int)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def levels(values: Sequence[Any], order: Sequence[Any] = (), max_values: int = MAX_VALUES) -> Levels:
    """The levels of ``values`` (one per trial): the distinct values in order, or quantile bins of numbers.

    Numbers are in increasing order, other values in ``order`` (a categorical
    distribution's choices) and then by name. Bins are the terciles of the trials'
    values; a bin that repeated values leave empty is dropped, so there may be fewer.
    """
    rank = {v: i for i, v in enumerate(order)}
    distinct = sorted(
        set(values), key=lambda v: (not _is_number(v), v if _is_number(v) else (rank.get(v, len(rank)), str(v)))
    )
    if len(distinct) <= max_values or not all(_is_number(v) for v in distinct):
        return Levels([format_value(v) for v in distinct], {v: i for i, v in enumerate(distinct)}, False)
    cuts = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, BINS + 1)[1:-1])
    raw = np.searchsorted(cuts, np.asarray(distinct, dtype=float), side="left")
    used = sorted(set(raw.tolist()))
    labels, index = [], {}
    for level, b in enumerate(used):
        members = [v for v, r in zip(distinct, raw, strict=True) if r == b]
        labels.append(f"{format_value(members[0])}–{format_value(members[-1])}")
        index.update({v: level for v in members})
    return Levels(labels, index, True)
