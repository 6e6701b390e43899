"""What a group costs: networks x steps x a shape's step cost, against the grid's measured epochs."""

from __future__ import annotations

import pytest

from search.run import cost
from search.spec import StudySpec
from trainer import TrainConfig


def test_a_run_costs_its_networks_epochs_each_up_to_its_own() -> None:
    event = {"network_epochs": (5, 14, 25), "weights": 1_000, "batch_size": 25, "images": 1_000}
    per_epoch = 1_000 * (25 + cost.UPDATE_IMAGES) * 40
    assert cost.run_units(event) == per_epoch * 44
    assert cost.run_units(event, 7.5) == pytest.approx(per_epoch * (5 + 7.5 + 7.5))


def test_the_grid_plan_has_27_groups_of_18_networks() -> None:
    spec = StudySpec("grid", max_epochs=3)
    points = spec.points()
    assert points is not None and len(points) == 729
    found = cost.plan([TrainConfig(seed=1).replace(**p) for p in points], 1_000)
    assert (found.groups, found.networks) == (27, 486)


def test_the_dearest_grid_group_against_the_cheapest_is_near_the_measured_ratio() -> None:
    """docs/performance.md, batched products: 5 x 256 at batch 16 took 204.05 s an epoch, 3 x 64 at batch 256
    3.81 s (53.6x). Counting trials, every group costs the same (1x)."""

    def units(layers: int, units: int, batch: int) -> float:
        weights = 784 * units + units + (layers - 1) * (units * units + units) + 10 * units + 10
        return cost.epoch_units(weights, batch, 50_000)

    ratio = units(5, 256, 16) / units(3, 64, 256)
    assert 53.6 / 2 < ratio < 53.6 * 2
