"""Claims of re-queued points: a group trains again as one, and a trial is told only its own network's result."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna
import pytest
from optuna.trial import TrialState

from search import app, records
from search.run.groups import MismatchedResult, run_group, take, waiting_group
from search.run.interrupts import NONE
from search.run.study import prepare
from search.space import point_key
from search.spec import StudySpec
from trainer import TrainConfig
from trainer.objective import Objective, TrialResult


def _interleaved(spec: StudySpec, groups: int = 2) -> tuple[optuna.Study, list[list[int]]]:
    """The study as two workers interrupted at once leave it: the points of ``groups`` groups queued
    again one of each in turn (each re-queued under the lock, trial by trial); their indexes by group."""
    study = prepare(spec)
    points = spec.points()
    assert points is not None
    keys = list(dict.fromkeys(point_key(p) for p in points))[:groups]
    members = [[i for i, p in enumerate(points) if point_key(p) == key] for key in keys]
    for turn in range(max(map(len, members))):
        for group in members:
            if turn < len(group):
                study.enqueue_trial(points[group[turn]], user_attrs={records.POINT: group[turn]})
    return study, members


def test_a_claim_takes_its_groups_points_wherever_they_wait(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("grid", max_epochs=2)
    study, members = _interleaved(spec)
    key = lambda point: point_key(point)  # noqa: E731
    for group in members:
        claimed = waiting_group(study, key, 10_000)
        assert [records.point(t) for t in claimed] == group  # the whole group, not the head's one point
        assert [records.point(t) for t in take(study, claimed)] == group
    assert not study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


@pytest.mark.slow  # two grid runs of two groups each, with real worker processes: minutes on a loaded machine
@pytest.mark.parametrize("workers", [1, 2])
def test_interleaved_requeued_groups_train_as_groups_with_the_values_of_a_clean_run(
    make_spec: Callable[..., StudySpec], workers: int
) -> None:
    """Two workers claiming re-queued points of two groups at once: each point gets its own network's values."""
    spec = make_spec("grid", trials=54, max_epochs=2, workers=workers, study_name="resumed")
    _, members = _interleaved(spec)
    assert sum(map(len, members)) == 54
    assert app.run_study(spec, []) == 0
    clean = spec.replace(study_name="clean", workers=1)
    assert app.run_study(clean, []) == 0
    resumed, reference = (optuna.load_study(study_name=s.name, storage=spec.storage) for s in (spec, clean))
    by_point = {records.point(t): t for t in reference.trials}
    for trial in resumed.trials:
        other = by_point[records.point(trial)]
        assert trial.params == other.params
        assert (trial.value, trial.user_attrs["test_accuracy"]) == (other.value, other.user_attrs["test_accuracy"])
        assert trial.user_attrs["parameter_count"] == other.user_attrs["parameter_count"]
    for group in members:  # each group again in one run, not one trial at a time (two workers may split
        # the last group into parts of whole networks, one part each: ``_Parts``)
        shared = {t.user_attrs.get(records.SHARED_RUN_ATTR) for t in resumed.trials if records.point(t) in group}
        assert 1 <= len(shared) <= workers and None not in shared, shared


class _Swapped(Objective):
    """Hands each trial the result of the next one: what a mixed-up claim would record."""

    def run_group(self, trials: Sequence[optuna.Trial], done: Callable, resumable: bool = True) -> None:
        results: list[TrialResult] = []
        super().run_group(trials, lambda trial, result: results.append(result), resumable)
        for trial, result in zip(trials, results[1:] + results[:1], strict=True):
            done(trial, result)


def test_a_result_of_another_network_is_never_told(make_spec: Callable[..., StudySpec]) -> None:
    from trainer import load_mnist, split

    spec = make_spec("grid", max_epochs=1)
    study, members = _interleaved(spec)
    splits = split(load_mnist(spec.data_dir, "cpu", False), spec.validation, spec.limit_train, spec.limit_test)
    objective = _Swapped(TrainConfig(seed=spec.seed, device="cpu"), splits, spec.distributions)
    claimed = waiting_group(study, lambda point: point_key(point), 2)
    told: list[optuna.trial.FrozenTrial] = []
    with pytest.raises(MismatchedResult, match="its result is not of its network"):
        run_group(study, objective, claimed, lambda: None, NONE, told.append, lambda s, t: None)
    assert not told
    assert not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
