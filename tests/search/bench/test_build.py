"""Building a table by training and from a finished grid study gives the same curves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
import pytest

from search import app, records
from search.bench.build import build_by_training, build_from_study, grid_values
from search.bench.table import METRICS, TableError
from search.space import SEVEN, grid_points
from search.spec import StudySpec
from tests.search.conftest import FAST
from trainer import load_mnist, split
from trainer.config import TrainConfig
from trainer.loop import run_key


def first_run(seed: int) -> int:
    """How many of the seeded grid's first points share one run."""
    points = grid_points(SEVEN, seed)
    key = [run_key(TrainConfig().replace(**p)) for p in points]
    return next(i for i, k in enumerate(key) if k != key[0])


def test_build_from_a_grid_study_equals_the_build_by_training(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("grid", seed=2, trials=first_run(2))
    assert app.run_study(spec, []) == 0
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    from_study = build_from_study(study)
    assert from_study.seeds == (2,) and from_study.fidelities == (5, 14, 25)
    assert len(from_study.points()) * 3 == len(study.trials)

    splits = split(load_mnist(spec.data_dir, "cpu", False), FAST["validation"], FAST["limit_train"], FAST["limit_test"])
    trained = build_by_training(from_study.values, from_study.fidelities, [2], splits, {})
    timed = METRICS.index("seconds")
    others = [i for i in range(len(METRICS)) if i != timed]
    np.testing.assert_array_equal(trained.curves[..., others], from_study.curves[..., others])
    assert not np.isnan(trained.curves[..., others]).all()


def test_grid_values_leave_the_fidelity_apart() -> None:
    values, fidelities = grid_values()
    assert "epochs" not in values and fidelities == (5, 14, 25)
    assert np.prod([len(v) for v in values.values()]) * len(fidelities) == 3**7


def _study(kind: str | None, epochs: tuple[int, ...], directions: tuple[str, ...] = ("maximize",)) -> optuna.Study:
    """A finished in-memory study of one network at ``epochs`` (histories are not needed to be refused)."""
    study = optuna.create_study(directions=list(directions))
    if kind is not None:
        study.set_user_attr("kind", kind)
    point = {p.name: p.grid[0] for p in SEVEN if p.name != "epochs"}
    distributions = {p.name: optuna.distributions.CategoricalDistribution(p.grid) for p in SEVEN}
    for e in epochs:
        params = {**point, "epochs": e}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, values=[0.5] * len(directions))
        )
    return study


@pytest.mark.parametrize(
    ("study", "message"),
    [
        (lambda: _study("random", (5, 14, 25)), "is a 'random' study"),
        (lambda: _study(None, (5, 14, 25)), "is not a grid study"),
        (lambda: _study("grid", (5, 14, 25), ("maximize", "minimize")), "has 2 objectives"),
        (lambda: _study("grid", (5, 14)), "ran epochs [5, 14] of its grid's [5, 14, 25]"),
    ],
)
def test_a_study_that_is_not_a_whole_grid_is_refused_in_one_line(study: Callable, message: str) -> None:
    with pytest.raises(TableError) as refused:
        build_from_study(study())
    assert message in str(refused.value) and "\n" not in str(refused.value)


def _history(epochs: int) -> list[dict[str, float]]:
    return [{"epoch": e, **{m: 0.5 for m in METRICS}} for e in range(1, epochs + 1)]


@pytest.mark.parametrize("reason", ["interrupted", "interrupted: its worker stopped beating", "out of memory"])
def test_a_grid_interrupted_once_and_finished_makes_a_table(reason: str) -> None:
    """Each point's interrupted trial (no histories, run again under a later number) is not its result."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "grid")
    point = {p.name: p.grid[0] for p in SEVEN if p.name != "epochs"}
    distributions = {p.name: optuna.distributions.CategoricalDistribution(p.grid) for p in SEVEN}
    for e in (25, 14, 5):  # closed as FAIL first, as the first trials of a run interrupted at once
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL,
                params={**point, "epochs": e},
                distributions=distributions,
                user_attrs={records.FAIL_REASON: reason, records.POINT: 0},
            )
        )
    for e in (25, 14, 5):
        study.add_trial(
            optuna.trial.create_trial(
                params={**point, "epochs": e},
                distributions=distributions,
                value=0.5,
                user_attrs={"seeds": [1], records.RETRY_OF_ATTR: 0},
                system_attrs={records.HISTORIES_ATTR: [_history(e)]},
            )
        )
    table = build_from_study(study)
    assert table.fidelities == (5, 14, 25) and table.seeds == (1,)
    assert not np.isnan(table.curves).any()
