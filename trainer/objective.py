"""The Optuna objective: a trial's suggestions become a ``TrainConfig`` and a run.

The only module of ``trainer`` that imports optuna.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainer.config import TrainConfig
from trainer.data import Splits
from trainer.loop import EpochCallback, EpochRecord, RunResult, train, train_together

AfterRun = Callable[[optuna.Trial, RunResult], None]


class TrialFailed(Exception):
    """The run could not finish (diverged, out of memory); the reason is in the trial's user attrs."""


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Ask ``trial`` for a value of each parameter in ``space``."""
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        else:
            raise TypeError(f"unsupported distribution {dist!r} for {name}")
    return params


class Objective:
    """Train the trial's configuration on ``splits``; the value is the last epoch's validation accuracy.

    Each epoch is reported to the trial (learning curves, pruning). The whole history,
    test accuracy, time, parameter count and device are stored as user attributes. A
    diverged or out-of-memory run raises ``TrialFailed`` with its reason stored; a
    pruned run raises ``optuna.TrialPruned`` after storing its history.
    """

    def __init__(
        self,
        base: TrainConfig,
        splits: Splits,
        space: Mapping[str, BaseDistribution],
        after_run: AfterRun | None = None,
    ) -> None:
        self.base, self.splits, self.space, self.after_run = base, splits, dict(space), after_run

    def config(self, trial: optuna.Trial) -> TrainConfig:
        return self.base.replace(**suggest(trial, self.space))

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.config(trial)
        with _out_of_memory_fails([trial]):
            result = train(config, self.splits, on_epoch=_reporter(trial))
        return self.conclude(trial, result)

    def run_together(self, trials: Sequence[optuna.Trial], done: Callable[[optuna.Trial, RunResult], None]) -> None:
        """Train trials whose configurations share a ``run_key`` as one run (``train_together``).

        ``done`` gets each trial and its result as soon as that trial's epochs are done.
        """
        configs = [self.config(trial) for trial in trials]
        running = list(trials)

        def leave(i: int, result: RunResult) -> None:
            running.remove(trials[i])
            done(trials[i], result)

        with _out_of_memory_fails(running):
            train_together(configs, self.splits, [_reporter(trial) for trial in trials], on_done=leave)

    def conclude(self, trial: optuna.Trial, result: RunResult) -> float:
        """Store the run in the trial; its value, or ``TrialFailed`` / ``optuna.TrialPruned``."""
        _store(trial, result)
        if self.after_run is not None:
            self.after_run(trial, result)
        if result.diverged:
            reason = f"diverged: the loss became NaN or infinite in epoch {len(result.history) + 1}"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason)
        if result.stopped:
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        return result.val_accuracy


def _reporter(trial: optuna.Trial) -> EpochCallback:
    def report(record: EpochRecord) -> bool:
        trial.report(record.val_accuracy, record.epoch)
        return trial.should_prune()

    return report


@contextlib.contextmanager
def _out_of_memory_fails(trials: Sequence[optuna.Trial]) -> Iterator[None]:
    try:
        yield
    except torch.OutOfMemoryError as e:
        for trial in trials:
            trial.set_user_attr("fail_reason", f"out of memory: {str(e).splitlines()[0]}")
        raise TrialFailed("out of memory") from e


def _store(trial: optuna.Trial, result: RunResult) -> None:
    trial.set_user_attr("history", [r.to_dict() for r in result.history])
    trial.set_user_attr("train_seconds", round(result.seconds, 3))
    trial.set_user_attr("parameter_count", result.parameter_count)
    trial.set_user_attr("device", result.device)
    if result.history:
        trial.set_user_attr("test_accuracy", result.test_accuracy)
        trial.set_user_attr("val_accuracy", result.val_accuracy)
