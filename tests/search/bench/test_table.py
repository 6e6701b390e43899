"""The table file: a round trip, and files that are not tables of this version refused in one message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search.bench.table import TableError, load, merge
from tests.search.bench.conftest import SUB_GRID, random_table


def test_table_round_trips_through_a_plain_npz(tmp_path: Path) -> None:
    table = random_table()
    path = table.save(tmp_path / "t.npz")
    again = load(path)
    np.testing.assert_array_equal(again.curves, table.curves)
    assert again.values == SUB_GRID and again.fidelities == (5, 14, 25) and again.seeds == (1, 2)
    assert again.info["data"] == {"fake": True}
    with np.load(path, allow_pickle=False) as archive:  # readable without this project
        header = json.loads(str(archive["header"]))
        assert archive["curves"].dtype == np.float32
        assert archive["curves"].shape == (len(table.points()), 2, 25, len(header["metrics"]))
    assert header["axes"] == ["point", "seed", "epoch", "metric"]


def test_index_follows_the_product_order() -> None:
    table = random_table()
    for i, point in enumerate(table.points()):
        assert table.index({**point, "epochs": 14}) == i
    with pytest.raises(KeyError):
        table.index({**table.points()[0], "hidden_units": 256})


def test_best_is_over_the_fidelities_and_seed_means() -> None:
    table = random_table()
    accuracy = table.metric("val_accuracy").astype(float).mean(axis=1)[:, [4, 13, 24]]
    assert table.best() == pytest.approx(np.nanmax(accuracy))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello", "is not a benchmark table"),
        ({"format": "other", "version": 1}, "format is not"),
        ({"format": "mnist-hpo-tabular", "version": 99}, "format version 99"),
    ],
)
def test_files_that_are_not_tables_are_refused(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, curves=np.zeros((1, 1, 1, 7), np.float32), header=np.array(json.dumps(content)))
    with pytest.raises(TableError, match=message):
        load(path)


def test_a_changed_curve_fails_the_content_hash(tmp_path: Path) -> None:
    path = random_table().save(tmp_path / "t.npz")
    with np.load(path) as archive:
        curves, header = archive["curves"].copy(), archive["header"]
    curves[0, 0, 0, 0] += 1
    np.savez(path, curves=curves, header=header)
    with pytest.raises(TableError, match="content hash"):
        load(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="no table file"):
        load(tmp_path / "absent.npz")


def test_merge_joins_seeds_and_refuses_overlaps() -> None:
    a, b = random_table(seed=0, seeds=(1,)), random_table(seed=1, seeds=(2, 3))
    both = merge([a, b])
    assert both.seeds == (1, 2, 3)
    np.testing.assert_array_equal(both.curves[:, :1], a.curves)
    np.testing.assert_array_equal(both.curves[:, 1:], b.curves)
    with pytest.raises(TableError, match="different seeds"):
        merge([a, a])
