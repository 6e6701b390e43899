"""The fronts of accuracy against cost, on studies whose front is known."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from search import app, records
from search.analysis.front import FrontPoint, oat_cost_changes, pareto_front, study_fronts
from search.spec import StudySpec


def point(number: int, accuracy: float, cost: float) -> FrontPoint:
    return FrontPoint(number, accuracy, cost, {})


def test_the_front_keeps_what_nothing_beats_on_both_cheapest_first() -> None:
    points = [point(0, 0.90, 10), point(1, 0.95, 20), point(2, 0.93, 30), point(3, 0.97, 40), point(4, 0.95, 20)]
    assert [p.number for p in pareto_front(points)] == [0, 1, 3]  # 2 is beaten by 1; 4 ties 1 and comes later
    assert pareto_front([]) == []


def study_of(rows: list[tuple[int, float, int, float]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "oat")
    for index, (units, value, count, seconds) in enumerate(rows):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=value,
                params={"hidden_units": units},
                distributions={"hidden_units": IntDistribution(1, 1000)},
                user_attrs={records.POINT: index, "parameter_count": count, "train_seconds": seconds},
            )
        )
    return study


def test_a_single_objective_study_has_fronts_and_oat_cost_changes() -> None:
    study = study_of([(128, 0.98, 101_770, 10.0), (64, 0.975, 50_890, 8.0), (256, 0.981, 203_530, 14.5)])
    fronts = study_fronts(study)
    assert [p.number for p in fronts["parameters"]] == [1, 0, 2]
    assert [p.number for p in fronts["seconds"]] == [1, 0, 2]
    changes = oat_cost_changes(study)
    assert [(c.value, c.parameters, c.seconds) for c in changes] == [(64, -50_880.0, -2.0), (256, 101_760.0, 4.5)]


def test_an_oat_move_trained_beside_the_baseline_costs_what_it_does(make_spec: Callable[..., StudySpec]) -> None:
    """The baseline shares its network with its cross-entropy move, and a sigmoid move is another network of
    the same shape and steps in the same run: as if trained alone, each costs what the baseline does."""
    spec = make_spec("oat", max_epochs=2, workers=1, compile="off")
    assert app.run_study(spec, []) == 0
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    baseline = next(t for t in study.trials if records.point(t) == 0)
    changes = {(c.parameter, c.value): c.seconds for c in oat_cost_changes(study)}
    cost = records.cost_seconds(baseline)
    assert cost is not None and cost > 0
    for move in (("activation", "sigmoid"), ("activation", "tanh"), ("loss", "cross_entropy")):
        assert changes[move] == pytest.approx(0.0, abs=0.1 * cost), (move, changes[move], cost)
