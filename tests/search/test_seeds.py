"""Seeds as a study dimension: each point trains under K seeds, its value is their mean."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
import pytest

from search import app, records
from search.spec import MAX_SEEDS, StudySpec
from tests.search.conftest import states


def load(spec: StudySpec) -> optuna.Study:
    return optuna.load_study(study_name=spec.name, storage=spec.storage)


def check_seeded(trial: optuna.trial.FrozenTrial, seeds: list[int]) -> None:
    """The trial's value is the mean of its seeds' last validation accuracies, each stored."""
    assert trial.user_attrs["seeds"] == seeds
    runs = records.histories(trial)
    assert len(runs) == len(seeds)
    values = records.seed_values(trial)
    assert values == [h[-1]["val_accuracy"] for h in runs]
    assert trial.user_attrs["seed_test_accuracies"] == [h[-1]["test_accuracy"] for h in runs]
    assert trial.value == pytest.approx(np.mean(values), abs=1e-12)
    assert trial.user_attrs["val_accuracy"] == trial.value
    assert records.test_accuracy(trial) == pytest.approx(np.mean(trial.user_attrs["seed_test_accuracies"]))
    # Each epoch reported the mean over the seeds (what a pruner sees).
    mean = records.mean_history(trial)
    assert trial.intermediate_values == pytest.approx({r["epoch"]: r["val_accuracy"] for r in mean})
    assert "history" not in trial.user_attrs


def test_oat_points_train_under_three_seeds(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("oat", trials=3, seeds=3, seed=5)
    assert app.run_study(spec, []) == 0
    trials = [t for t in load(spec).trials if t.state.name == "COMPLETE"]
    assert len(trials) == 3  # a point counts once in --trials, whatever its seeds
    for t in trials:
        check_seeded(t, [5, 6, 7])
        assert len(records.histories(t)[0]) == t.params["epochs"]
    # Seeds change the initialisation and the batch order, so they give different networks.
    assert any(len(set(records.seed_values(t))) > 1 for t in trials)


@pytest.mark.slow
def test_oat_with_three_seeds_ends_with_fifteen_seeded_trials(make_spec: Callable[..., StudySpec]) -> None:
    """The acceptance of issue 11 on fixture data."""
    spec = make_spec("oat", seeds=3)
    assert app.run_study(spec, []) == 0
    trials = [t for t in load(spec).trials if t.state.name == "COMPLETE"]
    assert len(trials) == 15 and states(spec.storage, spec.name) == {"COMPLETE": 15}
    for t in trials:
        check_seeded(t, [1, 2, 3])
        # Three different networks: on 100 validation images two seeds can tie in accuracy, not in loss.
        assert len({h[-1]["val_loss"] for h in records.histories(t)}) == 3
    assert any(len(set(records.seed_values(t))) > 1 for t in trials)


def test_sampler_trials_train_under_their_seeds(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("random", trials=2, seeds=2, pruner="none")
    assert app.run_study(spec, []) == 0
    trials = load(spec).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        check_seeded(t, [1, 2])


def test_one_seed_gives_the_unseeded_trial(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("oat", trials=1)
    app.run_study(spec, [])
    [t] = load(spec).trials
    check_seeded(t, [1])
    assert t.value == records.histories(t)[0][-1]["val_accuracy"]  # exactly, not a rounded mean


def test_a_study_cannot_resume_with_other_seeds(make_spec: Callable[..., StudySpec]) -> None:
    app.prepare(make_spec("oat", seeds=2))
    with pytest.raises(app.StudyError, match="seeds=2"):
        app.prepare(make_spec("oat", seeds=3))


@pytest.mark.parametrize("seeds", [0, -1, MAX_SEEDS + 1, 1.5, True])
def test_bad_seed_counts_are_refused(seeds: object) -> None:
    with pytest.raises(ValueError, match=r"seeds must be an integer in 1\.\."):
        StudySpec(kind="tpe", seeds=seeds)  # type: ignore[arg-type]
