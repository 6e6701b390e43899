"""More workers than groups: a group is split into parts of whole networks, one part a claim."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest

from search import app
from search.records import SHARED_RUN_ATTR
from search.run.groups import clean_cut, parts_per_group, take, waiting_group
from search.run.worker import _Parts
from search.space import SEVEN, grid_points, point_key, point_network
from search.spec import StudySpec
from tests.search.conftest import param_sets
from trainer import TrainConfig


@pytest.mark.parametrize(
    ("networks", "size", "cut"),
    [
        ("aabbcc", 1, 2),
        ("aabbcc", 2, 4),
        ("abab", 1, 4),  # a comes again after b: no shorter clean prefix
        ("abacdd", 2, 3),  # a, b, a: both a and b are whole after three points
        ("abcabc", 1, 6),
        ("", 3, 0),
        ("aab", 5, 3),  # fewer networks than asked: all of them
    ],
)
def test_a_cut_leaves_no_network_of_the_claim_behind(networks: str, size: int, cut: int) -> None:
    assert clean_cut(list(networks), size) == cut
    assert not set(networks[:cut]) & set(networks[cut:])


@pytest.mark.parametrize(
    ("workers", "groups", "parts"), [(1, 1, 1), (4, 27, 1), (4, 4, 1), (4, 3, 2), (4, 1, 4), (3, 2, 2), (5, 0, 5)]
)
def test_groups_are_split_only_when_fewer_are_left_than_workers(workers: int, groups: int, parts: int) -> None:
    assert parts_per_group(workers, groups) == parts


def _one_group_study(workers: int) -> tuple[optuna.Study, list[dict], _Parts]:
    """A study whose queue holds the grid's first group (81 points), as ``_enqueue_next`` leaves it."""
    points = grid_points(SEVEN, seed=1)
    first = [p for p in points if point_key(p) == point_key(points[0])]
    study = optuna.create_study(direction="maximize")
    for index, point in enumerate(first):
        study.enqueue_trial(point, user_attrs={"point": index})
    return study, first, _Parts(study, first, TrainConfig(), workers)


def test_the_last_group_is_claimed_in_parts_of_whole_networks() -> None:
    study, points, parts = _one_group_study(workers=2)
    key = lambda point: point_key(point)  # noqa: E731
    claimed: list[list[dict]] = []
    while sum(map(len, claimed)) < len(points):
        trials = take(study, waiting_group(study, key, len(points), parts(slots=len(points))))
        claimed.append([points[trial.user_attrs["point"]] for trial in trials])
    assert [len({point_network(p) for p in claim}) for claim in claimed] == [9, 9]  # 18 networks, two workers
    networks = [{point_network(p) for p in claim} for claim in claimed]
    assert not networks[0] & networks[1]
    assert sorted(map(str, (p for claim in claimed for p in claim))) == sorted(map(str, points))


def test_a_group_is_claimed_whole_while_enough_groups_are_left() -> None:
    study, points, _ = _one_group_study(workers=2)
    parts = _Parts(study, grid_points(SEVEN, seed=1), TrainConfig(), workers=2)  # 27 groups, none handed out
    assert parts(slots=2187) is None
    assert parts(slots=81) is not None  # the budget leaves one group: it is split


def test_three_workers_split_a_budget_of_one_group(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("grid", trials=27, workers=3, max_epochs=2)  # the first group: 27 points, 18 networks
    assert app.run_study(spec, []) == 0
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    trials = study.get_trials(deepcopy=False)
    assert len(param_sets(spec.storage, spec.name)) == 27 == len(trials)
    runs: dict[int, set] = {}
    for trial in trials:
        runs.setdefault(trial.user_attrs[SHARED_RUN_ATTR], set()).add(point_network(trial.params))
    assert len(runs) == 3 and all(len(networks) == 6 for networks in runs.values())
    assert len(set().union(*runs.values())) == 18  # no network trained twice


def test_a_group_a_checkpoint_holds_is_claimed_whole_by_one_worker() -> None:
    study, points, parts = _one_group_study(workers=3)
    assert parts(slots=len(points)) is not None  # split while nothing of it was saved
    resumed = _Parts(study, points, TrainConfig(), 3, resumed=lambda group: len(group) == len(points))
    assert resumed(slots=len(points)) is None  # saved by an interrupted run of any worker count: whole
