"""The grid as a tabular benchmark: a table of every grid point's learning curves, and samplers replayed on it."""

from search.bench.problem import TableProblem
from search.bench.table import Table, TableError, load

__all__ = ["Table", "TableError", "TableProblem", "load"]
