"""The grid as a tabular benchmark: a table of every grid point's learning curves, and samplers replayed on it.

The names below load their module when first used (``TableProblem`` loads torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.bench.problem import TableProblem
    from search.bench.table import Table, TableError, load

_HOME = {"TableProblem": "search.bench.problem", "Table": "search.bench.table", "TableError": "search.bench.table"}
_HOME["load"] = "search.bench.table"

__all__ = [
    "Table",
    "TableError",
    "TableProblem",
    "load",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'search.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
