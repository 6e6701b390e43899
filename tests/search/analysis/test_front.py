"""The fronts of accuracy against cost, on studies whose front is known."""

from __future__ import annotations

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from search import records
from search.analysis.front import FrontPoint, oat_cost_changes, pareto_front, study_fronts


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
