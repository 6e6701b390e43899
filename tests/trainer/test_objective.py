"""The objective's bookkeeping of a trial's seeds, on hand-made epochs (no training)."""

from __future__ import annotations

import pytest

from trainer.loop import EpochRecord
from trainer.objective import _Seeds


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
