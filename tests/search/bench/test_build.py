"""Building a table by training and from a finished grid study gives the same curves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna

from search import app
from search.bench.build import build_by_training, build_from_study, grid_values
from search.bench.table import METRICS
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
