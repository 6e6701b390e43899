"""The Optuna objective: a trial's suggestions become ``TrainConfig`` s, one per training seed, and runs.

The only module of ``trainer`` that imports optuna.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from trainer.checkpoint import Checkpoint, CheckpointError, CheckpointFolder
from trainer.config import TrainConfig
from trainer.data import Splits
from trainer.loop import EpochCallback, EpochRecord, RunResult, run_key, train_together


class TrialFailed(Exception):
    """The run could not finish (diverged, out of memory); the message is the reason, for the caller to store."""


@dataclass(frozen=True)
class TrialResult:
    """What a trial's seeds produced: one ``RunResult`` per seed, in seed order.

    ``seconds`` is the wall time from the start of the trial's group until its last seed
    was done (the trials of one group share it, which is how a summary counts it once).
    """

    runs: tuple[RunResult, ...]
    seconds: float

    @property
    def seeds(self) -> list[int]:
        return [r.config.seed for r in self.runs]

    @property
    def complete(self) -> bool:
        """Every seed trained at least one epoch, so the means below are over all seeds."""
        return all(r.history for r in self.runs)

    @property
    def value(self) -> float:
        """The mean over the seeds of the last validation accuracy (NaN when a seed has none)."""
        return float(np.mean([r.val_accuracy for r in self.runs]))

    @property
    def test_accuracy(self) -> float:
        return float(np.mean([r.test_accuracy for r in self.runs]))

    @property
    def diverged(self) -> RunResult | None:
        """The first seed's run that diverged, if any."""
        return next((r for r in self.runs if r.diverged), None)

    @property
    def stopped(self) -> bool:
        return any(r.stopped for r in self.runs)

    @property
    def model(self) -> nn.Module | None:
        """The first seed's model: the one saved for the trial."""
        return self.runs[0].model

    @property
    def parameter_count(self) -> int:
        return self.runs[0].parameter_count

    @property
    def device(self) -> str:
        return self.runs[0].device


@dataclass(frozen=True)
class GroupProgress:
    """Where a running group of trials stands after an epoch of one of its runs.

    Configurations of other ``run_key`` s cannot share a run and train one after another: ``run`` of
    ``runs``, each for up to ``epochs`` epochs.
    """

    first_trial: int  # the group's first trial number: which group this is
    trials: int
    run: int
    runs: int
    epoch: int
    epochs: int
    images_per_second: float  # training images through the run's networks per second of the epoch

    @property
    def fraction(self) -> float:
        """How much of the group's training is done, assuming its runs take equally long."""
        return (self.run - 1 + self.epoch / self.epochs) / self.runs


AfterRun = Callable[[optuna.Trial, TrialResult], None]
Done = Callable[[optuna.Trial, TrialResult], None]
OnProgress = Callable[[GroupProgress], None]


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
    """Train each trial's configuration under ``seeds`` training seeds on ``splits``.

    The seeds are ``base.seed, base.seed + 1, ...``. A trial's value is the mean over
    its seeds of the last epoch's validation accuracy. Each epoch's mean is reported to
    the trial once all its seeds reached that epoch (learning curves, pruning), unless
    ``report`` is False (a multi-objective trial, which Optuna cannot report to).
    ``after_run`` stores a finished trial's ``TrialResult``. A diverged or out-of-memory
    run raises ``TrialFailed`` with its reason; a pruned one ``optuna.TrialPruned``.
    With ``checkpoints``, each run keeps a checkpoint there and resumes an interrupted one
    (``CheckpointFolder.find``).
    """

    def __init__(
        self,
        base: TrainConfig,
        splits: Splits,
        space: Mapping[str, BaseDistribution],
        seeds: int = 1,
        after_run: AfterRun | None = None,
        on_progress: OnProgress | None = None,
        checkpoints: CheckpointFolder | None = None,
        report: bool = True,
    ) -> None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1, but got seeds={seeds!r}.")
        self.base, self.splits, self.space = base, splits, dict(space)
        self.seeds, self.after_run, self.on_progress = seeds, after_run, on_progress
        self.checkpoints = checkpoints
        self.report = report  # each epoch's mean to the trial; a multi-objective trial cannot take it

    def configs(self, trial: optuna.Trial) -> list[TrainConfig]:
        """The trial's configuration under each of its seeds."""
        config = self.base.replace(**suggest(trial, self.space))
        return [config.replace(seed=config.seed + k) for k in range(self.seeds)]

    def run_group(self, trials: Sequence[optuna.Trial], done: Done, resumable: bool = True) -> None:
        """Train every seed of every trial; configurations with one ``run_key`` train as one run.

        ``done`` gets each trial and its ``TrialResult`` as soon as all its seeds are done.
        The seeds of a configuration share its run; other ``run_key`` s train one after another. With
        ``resumable`` (the trials' points are asked again after an interrupt) and
        ``checkpoints``, each run keeps a checkpoint while it trains.
        """
        started = time.perf_counter()
        seeds = {t.number: _Seeds(t, self.seeds, self.report) for t in trials}
        members = [(t, k, c) for t in trials for k, c in enumerate(self.configs(t))]
        runs: dict[TrainConfig, list[tuple[optuna.Trial, int, TrainConfig]]] = {}
        for member in members:
            runs.setdefault(run_key(member[2]), []).append(member)

        def leave(trial: optuna.Trial, k: int, result: RunResult) -> None:
            if seeds[trial.number].finish(k, result):
                done(trial, TrialResult(tuple(seeds[trial.number].results), time.perf_counter() - started))

        with _out_of_memory_fails():
            for index, run in enumerate(runs.values()):
                progress = functools.partial(GroupProgress, trials[0].number, len(trials), index + 1, len(runs))
                self._train_run(run, seeds, leave, progress, resumable)

    def _train_run(
        self,
        run: list[tuple[optuna.Trial, int, TrainConfig]],
        seeds: dict[int, _Seeds],
        leave: Callable[[optuna.Trial, int, RunResult], None],
        progress: Callable[..., GroupProgress],
        resumable: bool,
    ) -> None:
        """Train one run of the group, resuming its checkpoints; each member leaves once.

        The run's configurations may lie in several saved runs (parts of a group, saved by
        other workers) and a new one (``CheckpointFolder.runs``): each trains in turn. A
        resumed run may train configurations whose trials were told before the interrupt:
        they train again for the others' sake, and nobody is told of them. A checkpoint that
        cannot be put back is removed with one line and its run trains from epoch 1. A run
        that fails removes its checkpoint (its trials are not asked again); an interrupted
        one keeps it.
        """
        configs = [c for *_, c in run]
        if self.checkpoints is None or not resumable:
            self._train_part(run, seeds, leave, progress, None, configs)
            return
        remaining = list(run)
        for checkpoint, part in self.checkpoints.runs(configs):
            # Each member trains in one part only, even where two saved runs hold its configuration.
            mine = [m for m in remaining if m[2] in set(part)]
            remaining = [m for m in remaining if m not in mine]
            try:
                self._train_part(mine, seeds, leave, progress, checkpoint, part)
            except CheckpointError as e:
                assert checkpoint is not None  # only a checkpoint's restore raises it
                checkpoint.discard(e)
                asked = [c for *_, c in mine]
                self._train_part(mine, seeds, leave, progress, Checkpoint(self.checkpoints.path(asked)), asked)

    def _train_part(
        self,
        run: list[tuple[optuna.Trial, int, TrainConfig]],
        seeds: dict[int, _Seeds],
        leave: Callable[[optuna.Trial, int, RunResult], None],
        progress: Callable[..., GroupProgress],
        checkpoint: Checkpoint | None,
        configs: list[TrainConfig],
    ) -> None:
        """Train ``configs`` (with ``checkpoint``); the members of ``run`` among them leave as they finish."""
        owners = _owners(run, configs)
        left: set[int] = set()

        def on_done(i: int, result: RunResult) -> None:
            if owners[i] is not None:
                left.add(i)
                leave(*owners[i], result)

        callbacks = [seeds[o[0].number].on_epoch(o[1]) if o is not None else None for o in owners]
        try:
            results = train_together(
                configs,
                self.splits,
                self._announce(callbacks, functools.partial(progress, epochs=max(c.epochs for c in configs))),
                on_done=on_done,
                checkpoint=checkpoint,
            )
        except CheckpointError:
            raise
        except Exception:
            if checkpoint is not None:
                checkpoint.clear()
            raise
        # Members that had left before the checkpoint but whose trial was not told yet.
        for i, result in enumerate(results):
            if i not in left:
                on_done(i, result)

    def _announce(
        self, callbacks: list[EpochCallback | None], progress: Callable[..., GroupProgress]
    ) -> list[EpochCallback]:
        """``callbacks``, the first of them to see an epoch also telling ``on_progress`` (once per epoch)."""
        if self.on_progress is None:
            return callbacks
        on_progress, images, told = self.on_progress, len(self.splits.train_y), [0]

        def wrap(callback: EpochCallback | None) -> EpochCallback:
            def on_epoch(record: EpochRecord) -> bool | None:
                if record.epoch > told[0]:
                    told[0] = record.epoch
                    on_progress(progress(epoch=record.epoch, images_per_second=images / max(record.seconds, 1e-9)))
                return callback(record) if callback is not None else None

            return on_epoch

        return [wrap(c) for c in callbacks]

    def conclude(self, trial: optuna.Trial, result: TrialResult) -> float:
        """Store the trial's runs (``after_run``); its value, or ``TrialFailed`` / ``optuna.TrialPruned``."""
        if self.after_run is not None:
            self.after_run(trial, result)
        diverged = result.diverged
        if diverged is not None:
            reason = (
                f"diverged: the loss of seed {diverged.config.seed} became NaN or infinite "
                f"in epoch {len(diverged.history) + 1}"
            )
            raise TrialFailed(reason)
        if result.stopped:
            raise optuna.TrialPruned(f"pruned after epoch {min(len(r.history) for r in result.runs)}")
        return result.value


class _Seeds:
    """One trial's seeds as they train: the mean of an epoch is reported once every seed reached it.

    Once the trial is pruned or one of its seeds diverged, its other seeds stop at their
    next epoch: the trial's verdict no longer depends on them.
    """

    def __init__(self, trial: optuna.Trial, seeds: int, report: bool = True) -> None:
        self.trial, self.report = trial, report
        self.val: list[list[float]] = [[] for _ in range(seeds)]
        self.results: list[RunResult | None] = [None] * seeds
        self.stop = False

    def on_epoch(self, k: int) -> EpochCallback:
        def record(epoch: EpochRecord) -> bool:
            self.val[k].append(epoch.val_accuracy)
            if self.report and not self.stop and all(len(v) >= epoch.epoch for v in self.val):
                self.trial.report(float(np.mean([v[epoch.epoch - 1] for v in self.val])), epoch.epoch)
                self.stop = self.trial.should_prune()
            return self.stop

        return record

    def finish(self, k: int, result: RunResult) -> bool:
        """Record seed ``k``'s result; True once every seed is done."""
        self.results[k] = result
        self.stop = self.stop or result.diverged
        return all(r is not None for r in self.results)


Member = tuple[optuna.Trial, int]  # a trial and the index of one of its seeds


def _owners(run: list[tuple[optuna.Trial, int, TrainConfig]], configs: list[TrainConfig]) -> list[Member | None]:
    """Which trial's seed each of ``configs`` trains (None: a configuration no open trial asked for)."""
    pool: dict[TrainConfig, list[Member]] = {}
    for trial, k, config in run:
        pool.setdefault(config, []).append((trial, k))
    return [pool[c].pop(0) if pool.get(c) else None for c in configs]


@contextlib.contextmanager
def _out_of_memory_fails() -> Iterator[None]:
    try:
        yield
    except torch.OutOfMemoryError as e:
        raise TrialFailed(f"out of memory: {str(e).splitlines()[0]}") from e
