"""The grid as a tabular benchmark: a table of every grid point's learning curves, and samplers replayed on it.

The names below load their module when first used (``TableProblem`` loads torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.lazy import lazy_names

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


__getattr__ = lazy_names(__name__, _HOME)
