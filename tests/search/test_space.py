from __future__ import annotations

import dataclasses
import itertools

from search import REGULARIZATION, SEVEN, grid_points, oat_points, search_space
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
    assert [p.name for p in REGULARIZATION] == ["dropout", "weight_decay"]


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
