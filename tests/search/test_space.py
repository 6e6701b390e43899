from __future__ import annotations

import dataclasses
import itertools

import pytest

from search import REGULARIZATION, SEVEN, StudySpec, grid_points, oat_points, search_space
from search.space import ROUND, point_key
from trainer import TrainConfig
from trainer.loop import run_key


def test_grid_and_distributions_name_the_same_parameters() -> None:
    for space in (search_space(False), search_space(True)):
        names = [p.name for p in space]
        assert len(set(names)) == len(names)
        assert set(names) <= {f.name for f in dataclasses.fields(TrainConfig)}
        for p in space:
            assert len(p.grid) == 3
            for value in p.grid:  # every grid value is also a point of the distribution
                assert p.distribution._contains(p.distribution.to_internal_repr(value)), (p.name, value)


def test_the_seven_parameters() -> None:
    assert [p.name for p in SEVEN] == [
        "hidden_layers",
        "hidden_units",
        "activation",
        "loss",
        "learning_rate",
        "epochs",
        "batch_size",
    ]
    assert [p.name for p in REGULARIZATION] == ["dropout", "weight_decay", "l1"]


def test_regularization_moves_dropout_l2_and_l1_alone_from_a_baseline_without_any() -> None:
    points = oat_points(search_space(True), TrainConfig())
    base = points[0]
    assert (base["dropout"], base["weight_decay"], base["l1"]) == (0.0, 0.0, 0.0)
    for parameter in REGULARIZATION:
        moved = [p for p in points if p[parameter.name] != 0.0]
        assert [p[parameter.name] for p in moved] == list(parameter.grid[1:])
        assert all({**p, parameter.name: 0.0} == base for p in moved)


def test_every_grid_value_makes_a_valid_config() -> None:
    for p in search_space(True):
        for value in p.grid:
            TrainConfig(**{p.name: value})


def test_grid_has_every_point_once_in_a_seeded_order() -> None:
    points = grid_points(SEVEN, seed=1)
    assert len(points) == 3**7 == len({tuple(sorted(p.items())) for p in points})
    assert points == grid_points(SEVEN, seed=1)
    assert points != grid_points(SEVEN, seed=2)


def test_oat_is_the_baseline_then_one_parameter_moved_at_a_time() -> None:
    base = TrainConfig()
    points = oat_points(SEVEN, base)
    assert len(points) == 15
    assert points[0] == {p.name: getattr(base, p.name) for p in SEVEN}
    for point in points[1:]:
        changed = [k for k, v in point.items() if v != points[0][k]]
        assert len(changed) == 1
    assert len({tuple(sorted(p.items())) for p in points}) == 15


def test_points_that_can_share_a_run_follow_each_other() -> None:
    points = grid_points(SEVEN, seed=1)
    keys = [run_key(TrainConfig().replace(**p)) for p in points]
    runs = [len(list(group)) for _, group in itertools.groupby(keys)]
    assert len(runs) == len(set(keys)) == 3**3  # depth x width x batch size; each run's points are contiguous
    assert sorted(set(runs)) == [81]  # activation x loss x lr x epochs
    oat = oat_points(SEVEN, TrainConfig())
    assert [p["loss"] for p in oat[:9]].count("cross_entropy") == 1
    assert all(run_key(TrainConfig().replace(**p)) == run_key(TrainConfig()) for p in oat[:9])
    assert run_key(TrainConfig().replace(**oat[9])) != run_key(TrainConfig())


def test_max_epochs_caps_the_grid_and_the_distribution() -> None:
    epochs = {p.name: p for p in search_space(max_epochs=10)}["epochs"]
    assert epochs.grid == (5, 10)  # 14 and 25 both become 10: one point, not two
    assert (epochs.distribution.low, epochs.distribution.high) == (1, 10)
    assert {p.name: p for p in search_space(max_epochs=3)}["epochs"].grid == (3,)
    assert len(grid_points(search_space(max_epochs=3), seed=1)) == 3**6
    spec = StudySpec(kind="oat", max_epochs=10)
    points = spec.points()
    assert points is not None and points[0]["epochs"] == 10 and len(points) == 14
    assert StudySpec(kind="tpe", max_epochs=10).distributions["epochs"].high == 10


@pytest.mark.parametrize("max_epochs", [0, 26, 2.5])
def test_bad_max_epochs_is_refused(max_epochs: object) -> None:
    with pytest.raises(ValueError, match=r"max_epochs must be an integer in 1\.\.25, but got max_epochs="):
        StudySpec(kind="grid", max_epochs=max_epochs)  # type: ignore[arg-type]


def test_grid_starts_long_groups_first_in_each_block() -> None:
    points = grid_points(SEVEN, seed=1)
    keys = [point_key(p) for p in points]
    groups = [list(g) for _, g in itertools.groupby(points, key=point_key)]
    assert len(groups) == len(set(keys))
    for start in range(0, len(groups), ROUND):
        block = groups[start : start + ROUND]
        batches = [g[0]["batch_size"] for g in block]
        assert batches == sorted(batches)  # every group holds 25 epochs: the smallest batch is the longest
        assert set(batches) == {16, 64, 256}  # and each block still samples every batch size


def test_oat_runs_the_baseline_group_then_the_longest_points_first() -> None:
    oat = oat_points(SEVEN, TrainConfig())
    assert oat[0] == {p.name: getattr(TrainConfig(), p.name) for p in SEVEN}
    shared = sum(point_key(p) == point_key(oat[0]) for p in oat)
    assert shared == 9 and all(point_key(p) == point_key(oat[0]) for p in oat[:shared])  # the baseline's group
    alone = oat[shared:]
    assert alone[0]["batch_size"] == 16 and alone[-1]["batch_size"] == 256
    assert [p["batch_size"] for p in alone].count(64) == len(alone) - 2
