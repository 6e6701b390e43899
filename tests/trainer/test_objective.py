"""The objective's bookkeeping of a trial's seeds, on hand-made epochs, and its groups' runs."""

from __future__ import annotations

import optuna
import pytest

from trainer import TrainConfig, objective
from trainer.loop import EpochRecord
from trainer.objective import Objective, _Seeds


class FakeTrial:
    """Records what is reported; prunes once ``prune_at`` has been reported."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reported: dict[int, float] = {}
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        assert step not in self.reported, "an epoch is reported once"
        self.reported[step] = value

    def should_prune(self) -> bool:
        return self.prune_at is not None and self.prune_at in self.reported


def epoch(n: int, val: float) -> EpochRecord:
    return EpochRecord(n, 0.0, 0.0, 0.0, val, 0.0, 0.0, 0.1)


@pytest.mark.parametrize("lockstep", [True, False])
def test_an_epoch_reports_the_mean_once_every_seed_reached_it(lockstep: bool) -> None:
    trial = FakeTrial()
    seeds = _Seeds(trial, 2)  # type: ignore[arg-type]
    a, b = seeds.on_epoch(0), seeds.on_epoch(1)
    order = [(a, 1, 0.5), (b, 1, 0.7), (a, 2, 0.6), (b, 2, 0.8)]
    if not lockstep:  # seed 0's whole run, then seed 1's (runs that cannot share)
        order = [order[0], order[2], order[1], order[3]]
    for callback, n, val in order:
        assert callback(epoch(n, val)) is False
    assert trial.reported == pytest.approx({1: 0.6, 2: 0.7})


def test_a_pruned_trial_stops_all_its_seeds() -> None:
    trial = FakeTrial(prune_at=1)
    seeds = _Seeds(trial, 2)  # type: ignore[arg-type]
    a, b = seeds.on_epoch(0), seeds.on_epoch(1)
    assert a(epoch(1, 0.5)) is False  # seed 1 has not reached epoch 1: nothing reported yet
    assert b(epoch(1, 0.7)) is True  # the mean is reported, the pruner stops this seed
    assert a(epoch(2, 0.6)) is True  # and the other at its next epoch
    assert trial.reported == pytest.approx({1: 0.6})


def test_the_seeds_of_a_group_train_in_one_run(splits, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three points of one group under three seeds: one run of nine configurations, each trial told its three."""
    runs: list[list[TrainConfig]] = []
    real = objective.train_together

    def spy(configs, *args, **kwargs):
        runs.append(list(configs))
        return real(configs, *args, **kwargs)

    monkeypatch.setattr(objective, "train_together", spy)
    space = {"learning_rate": optuna.distributions.CategoricalDistribution((0.1, 1.0, 10.0))}
    base = TrainConfig(hidden_units=16, batch_size=50, epochs=1, device="cpu")
    study = optuna.create_study(direction="maximize")
    trials = [study.ask(space) for _ in range(3)]
    told: dict[int, list[int]] = {}
    Objective(base, splits, space, seeds=3).run_group(trials, lambda t, r: told.__setitem__(t.number, r.seeds))
    assert len(runs) == 1 and len(runs[0]) == 9
    assert sorted((c.learning_rate, c.seed) for c in runs[0]) == sorted(
        (t.params["learning_rate"], seed) for t in trials for seed in (1, 2, 3)
    )
    assert told == {t.number: [1, 2, 3] for t in trials}


def test_a_trial_costs_its_network_time_whichever_trials_share_the_network(splits) -> None:
    """nll and cross-entropy share one network, mse has its own: each trial's share is split with the
    trials of its network, its network seconds (its cost as if trained alone) are not."""
    space = {"loss": optuna.distributions.CategoricalDistribution(("nll", "cross_entropy", "mse"))}
    base = TrainConfig(hidden_units=16, batch_size=50, epochs=2, device="cpu")
    study = optuna.create_study(direction="maximize")
    for loss in space["loss"].choices:
        study.enqueue_trial({"loss": loss})
    trials = [study.ask(space) for _ in range(3)]
    told: dict[str, objective.TrialResult] = {}
    Objective(base, splits, space, seeds=2).run_group(trials, lambda t, r: told.__setitem__(t.params["loss"], r))
    nll, ce, mse = (told[loss] for loss in ("nll", "cross_entropy", "mse"))
    # Networks of one shape in one run: equal but for the moments between their leavings.
    assert nll.network_seconds == pytest.approx(mse.network_seconds, rel=0.25)
    assert ce.network_seconds == pytest.approx(mse.network_seconds, rel=0.25)
    assert nll.seconds == pytest.approx(nll.network_seconds / 2, rel=0.05)
    assert ce.seconds == pytest.approx(ce.network_seconds / 2, rel=0.25)
    assert mse.seconds == mse.network_seconds
    group = max(r.group_seconds for r in told.values())
    assert nll.seconds + ce.seconds + mse.seconds <= group  # the shares add up to the run's time, storing left out
