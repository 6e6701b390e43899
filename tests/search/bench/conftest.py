"""Tables for bench tests: made from random curves (no training), written to temporary folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search.bench.table import METRICS, Table

SUB_GRID = {
    "hidden_layers": (1, 3),
    "hidden_units": (64, 128),
    "activation": ("relu", "tanh"),
    "loss": ("nll", "mse"),
    "learning_rate": (0.1, 1.0, 10.0),
    "batch_size": (64,),
}


def random_table(seed: int = 0, seeds: tuple[int, ...] = (1, 2)) -> Table:
    """A sub-grid table whose validation curves rise noisily, with one diverged point."""
    rng = np.random.default_rng(seed)
    n_points = int(np.prod([len(v) for v in SUB_GRID.values()]))
    curves = rng.uniform(0.1, 2.0, size=(n_points, len(seeds), 25, len(METRICS))).astype(np.float32)
    ceiling = rng.uniform(0.5, 0.98, size=(n_points, 1, 1))
    rise = 1 - np.exp(-np.arange(1, 26) / rng.uniform(2, 8, size=(n_points, 1, 1)))
    accuracy = ceiling * rise + rng.normal(0, 0.003, size=(n_points, len(seeds), 25))
    curves[..., METRICS.index("val_accuracy")] = np.clip(accuracy, 0, 1)
    curves[3, :, 7:, :] = np.nan  # diverged in epoch 8
    return Table(values=SUB_GRID, fidelities=(5, 14, 25), seeds=seeds, curves=curves, info={"data": {"fake": True}})


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    return random_table().save(tmp_path / "table.npz")
