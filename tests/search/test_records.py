"""What a trial stores, read through search.records, on hand-made trials (no training)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search import records

X = {"x": FloatDistribution(0, 1)}


def made(state: TrialState, number_of_retry: int | None = None, **attrs: object) -> optuna.trial.FrozenTrial:
    user_attrs = dict(attrs)
    if number_of_retry is not None:
        user_attrs[records.RETRY_OF_ATTR] = number_of_retry
    value = 0.5 if state == TrialState.COMPLETE else None
    return create_trial(state=state, value=value, params={"x": 0.5}, distributions=X, user_attrs=user_attrs)


def test_interrupted_and_requeued_trials_are_not_failures() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(made(TrialState.COMPLETE))  # 0
    study.add_trial(made(TrialState.FAIL, fail_reason=records.INTERRUPTED))  # 1: re-queued as 4
    study.add_trial(made(TrialState.FAIL, fail_reason="diverged: ..."))  # 2: a real failure
    study.add_trial(made(TrialState.FAIL))  # 3: killed (no reason), retried by Optuna's callback as 5
    study.add_trial(made(TrialState.WAITING, number_of_retry=1))  # 4
    study.add_trial(
        create_trial(state=TrialState.WAITING, params={"x": 0.5}, distributions=X, system_attrs={"retry_history": [3]})
    )  # 5
    study.add_trial(made(TrialState.FAIL, fail_reason=records.INTERRUPTED))  # 6: a sampler's, not re-queued
    study.add_trial(made(TrialState.PRUNED))  # 7
    counts = records.outcomes(study.trials)
    assert counts == records.Outcomes(complete=1, pruned=1, waiting=2, requeued=2, interrupted=1, failed=1)
    assert counts.describe() == (
        "2 finished (1 pruned), 2 waiting, 2 interrupted and re-queued, 1 interrupted, 1 failed"
    )
    assert counts.describe(by_state=True).startswith("1 complete, 1 pruned, 2 waiting")
    assert (
        records.Outcomes(complete=18, requeued=24).describe() == "18 finished, 24 interrupted and re-queued, 0 failed"
    )


def test_mean_of_histories_covers_the_epochs_every_seed_reached() -> None:
    runs = [
        [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}],
        [{"epoch": 1, "val_accuracy": 0.6}],
    ]
    assert records.mean_of(runs) == [{"epoch": 1, "val_accuracy": pytest.approx(0.55)}]
    assert records.mean_of([]) == []


def test_a_seed_without_an_accuracy_reads_as_nan_and_is_left_out_of_the_spread() -> None:
    from search.run.progress import trial_event

    failed = made(TrialState.FAIL, seeds=[1, 2, 3], seed_values=[0.5, None, 0.7], fail_reason="diverged: ...")
    values = records.seed_values(failed)
    assert values[0] == 0.5 and np.isnan(values[1]) and values[2] == 0.7
    event = trial_event(failed)
    assert event["spread"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert event["reason"] == "diverged: ..."
