"""The Optuna objective: a trial's suggestions become ``TrainConfig`` s, one per training seed, and runs.

The only module of ``trainer`` that imports optuna.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn

from trainer.checkpoint import Checkpoint, CheckpointError, CheckpointFolder
from trainer.config import TrainConfig
from trainer.data import Splits
from trainer.loop import EpochCallback, EpochRecord, RunResult, member_key, run_key, train_together
from trainer.model import weights_of

PROGRESS_SECONDS = 10.0  # while an epoch trains, ``on_progress`` hears of it this often


class TrialFailed(Exception):
    """The run could not finish (diverged, out of memory); the message is the reason, for the caller to store."""


@dataclass(frozen=True)
class TrialResult:
    """What a trial's seeds produced: one ``RunResult`` per seed, in seed order.

    ``seconds`` is the trial's share of its group's wall time (``_Clock``): each moment of a
    run is shared among the networks it trains then, and a network's share among its
    configurations still training, so the shares of a group's trials add up to its time.
    ``group_seconds`` is the wall time from the start of the group until the trial's last
    seed was done. ``network_seconds`` is its cost as if trained alone, measured per network:
    each moment's share of its seeds' networks, not split with the configurations that share
    them, while it trained; trials trained together or apart compare by it.
    """

    runs: tuple[RunResult, ...]
    seconds: float
    group_seconds: float = 0.0
    network_seconds: float = 0.0

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
    """Where a running group of trials stands after an epoch of one of its runs, or within one.

    Configurations of other ``run_key`` s cannot share a run and train one after another: ``run`` of
    ``runs``, each for up to ``epochs`` epochs. ``network_epochs``, ``weights``, ``batch_size`` and
    ``images`` say what the run costs (``search.run.cost``).
    """

    first_trial: int  # the group's first trial number: which group this is
    trials: int
    run: int
    runs: int
    epoch: int  # the epochs done: 0 (or ``resumed``) as the run starts
    epochs: int
    images_per_second: float  # training images through the run's networks per second of the epoch
    resumed: int = 0  # the epoch the run's checkpoint restored (0: it starts afresh)
    share: float = 0.0  # of epoch ``epoch + 1``, trained so far (0 between epochs)
    network_epochs: tuple[int, ...] = ()  # each network's epochs in this run (a network leaves once done)
    shape: str = ""  # hidden layers x units, as ``3 x 128``
    weights: int = 0  # a network's parameter count
    batch_size: int = 0
    images: int = 0  # the training images of an epoch

    @property
    def fraction(self) -> float:
        """How much of the group's training is done, assuming its runs take equally long."""
        return (self.run - 1 + (self.epoch + self.share) / self.epochs) / self.runs


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

        def leave(trial: optuna.Trial, k: int, result: RunResult, seconds: Seconds) -> None:
            mine = seeds[trial.number]
            if mine.finish(k, result, seconds):
                share, network = (sum(s) for s in zip(*mine.seconds, strict=True))
                done(trial, TrialResult(tuple(mine.results), share, time.perf_counter() - started, network))

        with _out_of_memory_fails():
            for index, run in enumerate(runs.values()):
                progress = functools.partial(GroupProgress, trials[0].number, len(trials), index + 1, len(runs))
                self._train_run(run, seeds, leave, progress, resumable)

    def _train_run(
        self,
        run: list[tuple[optuna.Trial, int, TrainConfig]],
        seeds: dict[int, _Seeds],
        leave: Callable[[optuna.Trial, int, RunResult, Seconds], None],
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
            held = set(part)
            mine = [m for m in remaining if m[2] in held]
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
        leave: Callable[[optuna.Trial, int, RunResult, Seconds], None],
        progress: Callable[..., GroupProgress],
        checkpoint: Checkpoint | None,
        configs: list[TrainConfig],
    ) -> None:
        """Train ``configs`` (with ``checkpoint``); the members of ``run`` among them leave as they finish."""
        owners = _owners(run, configs)
        left: set[int] = set()
        clock = _Clock([member_key(c) for c in configs])

        def on_done(i: int, result: RunResult) -> None:
            seconds = clock.leave(i)
            if owners[i] is not None:
                left.add(i)
                with clock.stopped():  # storing a trial's results is not the others' training
                    leave(*owners[i], result, seconds)

        callbacks = [clock.timed(seeds[o[0].number].on_epoch(o[1]) if o is not None else None) for o in owners]
        resumed = _restored_epoch(checkpoint) if checkpoint is not None and self.on_progress is not None else 0
        networks: dict[TrainConfig, int] = {}
        for c in configs:
            networks[member_key(c)] = max(networks.get(member_key(c), 0), c.epochs)
        progress = functools.partial(
            progress,
            epochs=max(c.epochs for c in configs),
            resumed=resumed,
            network_epochs=tuple(networks.values()),
            shape=f"{configs[0].hidden_layers} x {configs[0].hidden_units}",
            weights=weights_of(configs[0]),
            batch_size=configs[0].batch_size,
            images=len(self.splits.train_y),
        )
        announce = _Announce(self.on_progress, progress, len(self.splits.train_y), resumed)
        if self.on_progress is not None:  # the run starts (from its checkpoint's epoch)
            self.on_progress(progress(epoch=resumed, images_per_second=0.0))
        try:
            results = train_together(
                configs,
                self.splits,
                announce.wrap(callbacks),
                on_done=on_done,
                checkpoint=checkpoint,
                on_steps=announce.steps if self.on_progress is not None else None,
            )
        except (CheckpointError, optuna.exceptions.UpdateFinishedTrialError):
            raise  # a trial taken over by another worker: its re-queued points resume this checkpoint there
        except Exception:
            if checkpoint is not None:
                checkpoint.clear()
            raise
        # Members that had left before the checkpoint but whose trial was not told yet.
        for i, result in enumerate(results):
            if i not in left:
                on_done(i, result)

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


class Seconds(NamedTuple):
    """A configuration's time in its run: its ``share`` (split with the configurations of its
    network) and its ``network`` 's (its network's share of each moment while it trained)."""

    share: float
    network: float


class _Announce:
    """Tells ``on_progress`` where a run stands: after each epoch (once, by the first callback to
    see it), and every ``PROGRESS_SECONDS`` while an epoch trains, so that a long one is not silent."""

    def __init__(
        self, on_progress: OnProgress | None, progress: Callable[..., GroupProgress], images: int, epoch: int
    ) -> None:
        self.on_progress, self.progress, self.images = on_progress, progress, images
        self.told = epoch  # a checkpoint's epochs, replayed to the callbacks, were not trained by this run
        self.epoch_started = self.sent = time.perf_counter()

    def wrap(self, callbacks: list[EpochCallback | None]) -> list[EpochCallback | None]:
        if self.on_progress is None:
            return callbacks
        return [self._telling(c) for c in callbacks]

    def _telling(self, callback: EpochCallback | None) -> EpochCallback:
        def on_epoch(record: EpochRecord) -> bool | None:
            if record.epoch > self.told and self.on_progress is not None:
                self.told = record.epoch
                rate = self.images / max(record.seconds, 1e-9)
                self.on_progress(self.progress(epoch=record.epoch, images_per_second=rate))
                self.epoch_started = self.sent = time.perf_counter()
            return callback(record) if callback is not None else None

        return on_epoch

    def steps(self, epoch: int, share: float) -> None:
        """Epoch ``epoch`` has ``share`` of its steps done: tell it when the last word is old enough."""
        now = time.perf_counter()
        if self.on_progress is None or now - self.sent < PROGRESS_SECONDS:
            return
        self.sent = now
        rate = share * self.images / max(now - self.epoch_started, 1e-9)
        self.on_progress(self.progress(epoch=epoch - 1, share=share, images_per_second=rate))


class _Clock:
    """A run's wall time shared out as it passes: each moment among the networks still training,
    a network's share among its configurations still training (its 5, 14 and 25 epochs train once).

    Time passes in ticks (each configuration's epoch, each one's leaving); the shares of a
    run's configurations add up to the time from the clock's start to the last one's leaving,
    less the time the clock was ``stopped`` (the callbacks that report and store results: with
    it, a configuration leaving last was charged the storing of every other's). A
    configuration's network time is its network's share alone: what it costs as if trained
    alone, whichever configurations share the network.
    """

    def __init__(self, networks: Sequence[TrainConfig]) -> None:
        self.networks = list(networks)
        self.active = set(range(len(self.networks)))
        self.seconds = [0.0] * len(self.networks)
        self.network = [0.0] * len(self.networks)
        self.last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        members: dict[TrainConfig, list[int]] = {}
        for i in self.active:
            members.setdefault(self.networks[i], []).append(i)
        for group in members.values():
            for i in group:
                self.seconds[i] += elapsed / len(members) / len(group)
                self.network[i] += elapsed / len(members)

    def leave(self, i: int) -> Seconds:
        """Configuration ``i`` is done: its share of the run's time, and its network's."""
        self.tick()
        self.active.discard(i)
        return Seconds(self.seconds[i], self.network[i])

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The time spent inside is no one's."""
        try:
            yield
        finally:
            self.last = time.perf_counter()

    def timed(self, callback: EpochCallback | None) -> EpochCallback:
        """``callback``, ticking the clock first; its own time (a report to the trial's storage) is not counted."""

        def on_epoch(record: EpochRecord) -> bool | None:
            self.tick()
            with self.stopped():
                return callback(record) if callback is not None else None

        return on_epoch


class _Seeds:
    """One trial's seeds as they train: the mean of an epoch is reported once every seed reached it.

    Once the trial is pruned or one of its seeds diverged, its other seeds stop at their
    next epoch: the trial's verdict no longer depends on them.
    """

    def __init__(self, trial: optuna.Trial, seeds: int, report: bool = True) -> None:
        self.trial, self.report = trial, report
        self.val: list[list[float]] = [[] for _ in range(seeds)]
        self.results: list[RunResult | None] = [None] * seeds
        self.seconds = [Seconds(0.0, 0.0)] * seeds  # each seed's time in its run
        self.stop = False

    def on_epoch(self, k: int) -> EpochCallback:
        def record(epoch: EpochRecord) -> bool:
            self.val[k].append(epoch.val_accuracy)
            if self.report and not self.stop and all(len(v) >= epoch.epoch for v in self.val):
                self.trial.report(float(np.mean([v[epoch.epoch - 1] for v in self.val])), epoch.epoch)
                self.stop = self.trial.should_prune()
            return self.stop

        return record

    def finish(self, k: int, result: RunResult, seconds: Seconds) -> bool:
        """Record seed ``k``'s result and its share of the time; True once every seed is done."""
        self.results[k] = result
        self.seconds[k] = seconds
        self.stop = self.stop or result.diverged
        return all(r is not None for r in self.results)


Member = tuple[optuna.Trial, int]  # a trial and the index of one of its seeds


def _owners(run: list[tuple[optuna.Trial, int, TrainConfig]], configs: list[TrainConfig]) -> list[Member | None]:
    """Which trial's seed each of ``configs`` trains (None: a configuration no open trial asked for)."""
    pool: dict[TrainConfig, list[Member]] = {}
    for trial, k, config in run:
        pool.setdefault(config, []).append((trial, k))
    return [pool[c].pop(0) if pool.get(c) else None for c in configs]


def _restored_epoch(checkpoint: Checkpoint) -> int:
    """The epoch a run resumes from (0 when its checkpoint holds none), for the progress view only."""
    try:
        state = checkpoint.load()
    except Exception:  # noqa: BLE001 - the run itself says what is wrong with its checkpoint
        return 0
    return int(state["epoch"]) if state else 0


@contextlib.contextmanager
def _out_of_memory_fails() -> Iterator[None]:
    try:
        yield
    except torch.OutOfMemoryError as e:
        raise TrialFailed(f"out of memory: {str(e).splitlines()[0]}") from e
