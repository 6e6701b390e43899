"""Replay a sampler against a table: an in-memory study whose trials look their curves up, in simulated time.

Each repeat is one fresh in-memory Optuna study. A trial is asked, its point looked up,
and its recorded per-epoch validation accuracy reported epoch by epoch, so that pruners act
as they would on a live study. ``workers`` simulated workers run trials at once: every
epoch ends at its start plus the recorded seconds, and events are handled in time order
(as Optuna's asynchronous benchmark simulator does), so a sampler sees exactly the trials
that would have finished by the time it is asked. A new trial starts while finished plus
running trials are below the budget, as in the live studies; a diverged point fails its
trial, which does not count as finished.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import math
import multiprocessing
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from search.bench.names import COSTS, PRUNERS, SAMPLERS
from search.bench.problem import TableProblem
from search.bench.table import Table
from search.space import grid_points
from search.spec import StudySpec
from trainer.errors import UsageError
from trainer.objective import suggest


class ReplayError(UsageError):
    """A sampler or pruner that cannot run here; the message says which and why."""


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial of a replay: its grid point, its value and test accuracy (None when pruned or failed)
    and when it ran."""

    params: dict[str, Any]
    state: str
    value: float | None
    begin: float
    end: float
    test: float | None = None  # the point's seed-mean test accuracy, what a user who picked it would get
    cost: float | None = None  # a multi-objective replay's second objective (parameters, or seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "value": self.value,
            "test": self.test,
            "state": self.state,
            "time": round(self.end, 3),
            **({"cost": self.cost} if self.cost is not None else {}),
        }


@dataclass(frozen=True)
class Run:
    """One repeat of one sampler: its trials in the order they finished, and the sampler's own time."""

    sampler: str
    seed: int
    trials: list[TrialRecord] = field(default_factory=list)
    ask_seconds: float = field(default=0.0, compare=False)  # CPU time in ask, differs between runs

    def finished(self) -> list[TrialRecord]:
        """The trials that count against the budget (complete or pruned), in finish order."""
        return [t for t in self.trials if t.state != "FAIL"]


def check_sampler(name: str) -> None:
    """``ReplayError`` for an unknown sampler or one whose packages are absent."""
    if name not in SAMPLERS:
        raise ReplayError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    if name == "gp":
        try:
            import scipy  # noqa: F401  (GPSampler optimises its acquisition with scipy)
        except ImportError:
            raise ReplayError("sampler 'gp' needs scipy, which is not installed (pip install scipy)") from None


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler a live study of that kind uses (grid, shuffled: random draws, but every trial is enqueued)."""
    check_sampler(name)
    if name in ("random", "tpe", "nsga2"):
        return StudySpec(kind=name, seed=seed).sampler()
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """The pruners of the live studies (``StudySpec.pruner_object``)."""
    if name not in PRUNERS:
        raise ReplayError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")
    return StudySpec(kind="random", pruner=name).pruner_object()


@dataclass
class _Running:
    trial: optuna.Trial
    params: dict[str, Any]
    values: np.ndarray
    seconds: np.ndarray
    begin: float
    epoch: int = 0


def check_objectives(objectives: tuple[str, ...], pruner: str) -> None:
    """``ReplayError`` unless ``objectives`` is accuracy, or accuracy and one cost (with no pruner)."""
    names = ",".join(objectives)
    if objectives == ("accuracy",):
        return
    if len(objectives) != 2 or objectives[0] != "accuracy" or objectives[1] not in COSTS:
        raise ReplayError(f"--objectives must be accuracy or accuracy,{'|'.join(COSTS)}, but got {names!r}")
    if pruner != "none":
        raise ReplayError(f"a multi-objective replay cannot prune (trials report nothing); got --pruner {pruner}")


def replay_one(
    table: Table,
    sampler: str,
    seed: int,
    trials: int,
    workers: int = 1,
    pruner: str = "none",
    objectives: tuple[str, ...] = ("accuracy",),
) -> Run:
    """Run ``sampler`` (seeded ``seed``) for ``trials`` finished trials on the table, in simulated time.

    With ``objectives`` accuracy and a cost, the study is multi-objective, as a live one with
    ``--objectives``: its trials report nothing and are told (accuracy, cost).
    """
    check_objectives(objectives, pruner)
    problem = TableProblem(table, ordinal=sampler == "gp")
    multi = len(objectives) > 1
    study = optuna.create_study(
        directions=["maximize", "minimize"] if multi else ["maximize"],
        sampler=make_sampler(sampler, seed),
        pruner=make_pruner(pruner, max(table.fidelities)),
    )
    points = _order(problem, sampler, seed) if sampler in ("grid", "shuffled") else []
    for point in points[: trials + workers]:
        study.enqueue_trial(point)
    # A live grid study stops once each point has run (a failed one too): no point is drawn twice.
    limit = len(points) if points else math.inf
    run = Run(sampler, seed)
    events: list[tuple[float, int, int]] = []  # (time, order, trial number): a running trial's next epoch end
    running: dict[int, _Running] = {}
    ask_seconds = 0.0

    def start(now: float) -> None:
        nonlocal ask_seconds
        started = time.process_time()  # CPU time: the sampler's own cost, whatever else shares the machine
        trial = study.ask()
        params = problem.params(suggest(trial, problem.search_space))
        ask_seconds += time.process_time() - started
        values, seconds = problem.curve(params)
        running[trial.number] = _Running(trial, params, values, seconds, now)
        heapq.heappush(events, (now + float(seconds[0]), trial.number, trial.number))

    def end(number: int, now: float, state: TrialState, value: float | None) -> None:
        item = running.pop(number)
        cost = problem.cost(item.params, objectives[1]) if multi else None
        told = ([value, cost] if multi else value) if state == TrialState.COMPLETE else None
        study.tell(item.trial, told, state=state)
        test = problem.test_accuracy(item.params) if state == TrialState.COMPLETE else None
        run.trials.append(TrialRecord(item.params, state.name, value, item.begin, now, test, cost))

    for _ in range(min(workers, trials)):
        start(0.0)
    while running:
        now, _, number = heapq.heappop(events)
        item = running[number]
        value = float(item.values[item.epoch])
        item.epoch += 1
        if math.isnan(value):
            end(number, now, TrialState.FAIL, None)
        elif multi:  # a multi-objective trial reports nothing: it runs its epochs and is told at the end
            if item.epoch == len(item.values):
                end(number, now, TrialState.COMPLETE, value)
            else:
                heapq.heappush(events, (now + float(item.seconds[item.epoch]), number, number))
                continue
        else:
            item.trial.report(value, item.epoch)
            # A live trial asks the pruner after every epoch, its last one included.
            if item.trial.should_prune():
                end(number, now, TrialState.PRUNED, None)
            elif item.epoch == len(item.values):
                end(number, now, TrialState.COMPLETE, value)
            else:
                heapq.heappush(events, (now + float(item.seconds[item.epoch]), number, number))
                continue
        while (
            len(running) < workers
            and len(run.finished()) + len(running) < trials
            and len(run.trials) + len(running) < limit
        ):
            start(now)
    return Run(sampler, seed, run.trials, ask_seconds)


def _order(problem: TableProblem, sampler: str, seed: int) -> list[dict[str, Any]]:
    """The grid's points in the grid study's seeded order (``grid``), or uniformly shuffled (``shuffled``):
    sampling without replacement, the fair grid baseline, as the study's order keeps a run's points together."""
    if sampler == "grid":
        return grid_points(problem.grid(), seed)
    points = grid_points(problem.grid(), 0)
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[i] for i in order]


def replay(
    table_path: str,
    samplers: list[str],
    trials: int,
    repeats: int,
    workers: int = 1,
    pruner: str = "none",
    seed: int = 1,
    processes: int = 1,
    objectives: tuple[str, ...] = ("accuracy",),
) -> dict[str, list[Run]]:
    """Replay each sampler ``repeats`` times (seeds ``seed, seed + 1, ...``), spread over ``processes``."""
    for name in samplers:
        check_sampler(name)
    make_pruner(pruner, 1)
    check_objectives(objectives, pruner)
    tasks = [(name, seed + r) for name in samplers for r in range(repeats)]
    args = (trials, workers, pruner, objectives)
    if processes == 1:
        threads = torch.get_num_threads()
        _load_table(table_path)
        try:
            runs = [_task(task, args) for task in tasks]
        finally:
            torch.set_num_threads(threads)
    else:
        # Each process loads the table once; repeats are independent, so any order gives the same runs.
        # fork starts in milliseconds where spawn re-imports torch (seconds); the replay runs no torch op.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with concurrent.futures.ProcessPoolExecutor(processes, context, _load_table, (table_path,)) as pool:
            runs = list(pool.map(_task, tasks, [args] * len(tasks), chunksize=max(1, len(tasks) // (4 * processes))))
    grouped: dict[str, list[Run]] = {name: [] for name in samplers}
    for run in runs:
        grouped[run.sampler].append(run)
    return grouped


_TABLE: list[Table] = []


def _load_table(path: str) -> None:
    from search.bench.table import load

    # GP's small tensor operations are fastest on one thread; on a shared CPU, two threads per
    # process made a 30-trial GP replay 100 times slower (343 s against 3 s).
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    _TABLE[:] = [load(path)]


def _task(task: tuple[str, int], args: tuple[int, int, str, tuple[str, ...]]) -> Run:
    sampler, seed = task
    return replay_one(_TABLE[0], sampler, seed, *args)
