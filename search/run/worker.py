"""A worker: claim and run a study's trials until its budget is reached (the hand-out, parts, re-queueing)."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from search import records
from search._startup import quiet_optuna
from search.run.budget import Counts, Verdict, claim, fail_silent_trials
from search.run.groups import Key, Part, Values, fixed_params, parts_per_group, run_group, waiting_group
from search.run.interrupts import NONE, Interrupts
from search.run.outputs import record_trial
from search.run.plan import compile_update
from search.run.progress import Emit, epoch_event, trial_event
from search.run.study import checkpoint_folder
from search.space import point_key, point_network
from search.spec import StudySpec
from search.storage import MAX_RETRIES, Store, StudyLock, open_store
from trainer import TrainConfig, load_mnist, resolve_device, split
from trainer.objective import Objective, TrialResult

POLL_SECONDS = 1.0


def run_worker(
    spec: StudySpec, worker: int, emit: Emit, interrupts: Interrupts = NONE, store: Store | None = None
) -> None:
    """Claim and run trials until the budget is reached, the points run out or time is up.

    ``store`` is the process's opened storage; a worker process opens its own.
    """
    quiet_optuna()
    device = resolve_device(spec.device)
    torch.set_num_threads(spec.threads)  # torch's default, every core, oversubscribes a shared machine

    def status(text: str) -> None:
        if spec.workers > 1:  # a worker process's start takes seconds to a minute: it says what it is busy with
            emit({"type": "status", "worker": worker, "text": text})

    if device.type == "cpu" and spec.compile == "on":
        status("compiling the Adadelta update (5-35 s)")
        compile_update(lambda text: emit({"type": "note", "worker": worker, "text": text}))
    store = store or open_store(spec.storage, spec.heartbeat, spec.artifacts)
    storage = store.storage
    study = optuna.load_study(study_name=spec.name, storage=storage, pruner=spec.pruner_object())
    study.sampler = spec.sampler(seed_offset=_seed_offset(storage, study, worker))
    status("loading the data")
    splits = split(load_mnist(spec.data_dir, device, spec.download), spec.validation, spec.limit_train, spec.limit_test)
    objective = Objective(
        TrainConfig(seed=spec.seed, device=str(device)),
        splits,
        spec.distributions,
        seeds=spec.seeds,
        after_run=lambda trial, result: record_trial(trial, result, store.artifacts),
        on_progress=lambda progress: emit(epoch_event(progress, worker)),
        # A running group's checkpoint lies beside the study's artifacts (the store's own folder).
        checkpoints=checkpoint_folder(spec, study, store),
        report=not spec.multi_objective,
    )
    values = objective_values(spec.objectives) if spec.multi_objective else None
    points = spec.points()
    budget = len(points) if points is not None and spec.trials is None else spec.budget
    key: Key | None = None
    part: Callable[[int], Part | None] = lambda slots: None  # noqa: E731
    if points is not None and spec.share_runs:
        key = lambda point: point_key(point, objective.base)  # noqa: E731
        if spec.workers > 1:
            part = _Parts(study, points, objective.base, spec.workers, _resumed(objective, spec.seeds))
    next_point = (lambda slots: _enqueue_next(study, points, slots, key)) if points is not None else None
    lock = store.lock(spec.name)
    report = lambda frozen: emit(trial_event(frozen, worker))  # noqa: E731
    note = lambda text: emit({"type": "note", "worker": worker, "text": text})  # noqa: E731
    requeue = lambda study, trials: _under(lock, _requeue, study, trials)  # noqa: E731
    deadline = time.monotonic() + spec.timeout if spec.timeout else None
    while deadline is None or time.monotonic() < deadline:
        with interrupts.held_section():  # a claim is never cut in half
            lock.acquire()
            try:
                counts = Counts.of(storage, study)
                verdict = claim(counts, budget, next_point)
                if verdict is Verdict.RUN:
                    # A sampler's trial, or a point that shares with nothing, is a group of one.
                    slots = budget - counts.finished - counts.running
                    claimed = waiting_group(study, key, slots, part(slots)) if key is not None else []
                    if not run_group(
                        study, objective, claimed, lock.release, interrupts, report, requeue, values, note
                    ):
                        _free_memory()
            finally:
                lock.release()
        if verdict is Verdict.DONE:
            return
        if verdict is Verdict.WAIT:
            time.sleep(POLL_SECONDS)
            with interrupts.held_section():
                _under(lock, requeue_stale_trials, storage, study, 2 * spec.heartbeat)


def requeue_stale_trials(storage: optuna.storages.BaseStorage, study: optuna.Study, grace_seconds: float) -> None:
    """Fail the trials of dead workers and queue their points again; called under the study's lock.

    Optuna fails every stale trial first and re-queues copies one by one afterwards: a claim
    in between would see free slots and nothing waiting and hand out new points past the
    owed ones, and two workers would each re-queue the same trial. Under the lock, no claim
    sees the half-done state; a worker killed within it leaves points that
    ``_points_handed_out`` counts as owed.
    """
    optuna.storages.fail_stale_trials(study)
    fail_silent_trials(storage, study, grace_seconds)


def _under(lock: StudyLock, action: Callable[..., None], *args: Any) -> None:
    """``action(*args)`` with the study's lock held (taken here unless this worker holds it already)."""
    if lock.held:
        action(*args)
        return
    with lock:
        action(*args)


def objective_values(objectives: tuple[str, ...]) -> Values:
    """A trial's objectives, in ``objectives``' order: accuracy, its parameter count, its seconds as if alone."""

    def values(accuracy: float, result: TrialResult) -> list[float]:
        found = {"accuracy": accuracy, "parameters": float(result.parameter_count), "seconds": result.network_seconds}
        return [found[name] for name in objectives]

    return values


class _Parts:
    """The part of a group a worker claims when fewer groups are left than ``workers`` (None: all of it).

    The groups left are those of the waiting points and of the next points not yet handed
    out, as many as the budget's free ``slots``. Each is split into ``parts_per_group``
    parts of whole networks, so that a study's last groups (or a small budget's one) keep
    every worker busy. A group some of whose waiting points a checkpoint holds (an
    interrupted run, of any worker count) is claimed whole, so that its saved runs are
    resumed by one worker and none of its networks trains twice. Called under the study's
    lock, before ``waiting_group``.
    """

    def __init__(
        self,
        study: optuna.Study,
        points: list[dict[str, Any]],
        base: TrainConfig,
        workers: int,
        resumed: Callable[[list[dict[str, Any]]], bool] = lambda points: False,
    ) -> None:
        self.study, self.workers, self.base, self.resumed = study, workers, base, resumed
        self.keys = [point_key(point, base) for point in points]
        networks: dict[TrainConfig, set[TrainConfig]] = {}
        for point, key in zip(points, self.keys, strict=True):
            networks.setdefault(key, set()).add(point_network(point, base))
        self.networks = {key: len(members) for key, members in networks.items()}

    def __call__(self, slots: int) -> Part | None:
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            return None
        head = records.fixed_params(min(waiting, key=lambda t: t.number))
        group = [p for t in waiting if point_key(p := records.fixed_params(t), self.base) == point_key(head, self.base)]
        if self.resumed(group):
            return None
        owed, start = _points_handed_out(self.study)
        left = {point_key(records.fixed_params(t), self.base) for t in waiting}
        later = [*owed, *range(start, len(self.keys))][: max(slots - len(waiting), 0)]
        left.update(self.keys[i] for i in later)
        parts = parts_per_group(self.workers, len(left))
        if parts == 1:
            return None
        size = -(-self.networks.get(point_key(head, self.base), 1) // parts)
        return Part(size, lambda point: point_network(point, self.base))


def _resumed(objective: Objective, seeds: int) -> Callable[[list[dict[str, Any]]], bool]:
    """Whether a checkpoint of the study holds a run of any of these points (under any of their seeds)."""
    base, folder = objective.base, objective.checkpoints

    def resumed(points: list[dict[str, Any]]) -> bool:
        configs = [base.replace(**p).replace(seed=base.seed + k) for p in points for k in range(seeds)]
        return folder is not None and bool(configs) and folder.resumes(configs)

    return resumed


def _seed_offset(storage: optuna.storages.BaseStorage, study: optuna.Study, worker: int) -> int:
    """Reproducible for a fresh study, distinct per worker and per command joining a running one."""
    counts = Counts.of(storage, study)
    offset = 7919 * worker + counts.finished + counts.failed
    return offset + (os.getpid() if counts.running else 0)


def _enqueue_next(study: optuna.Study, points: list[dict[str, Any]], slots: int, key: Key | None) -> bool:
    """Enqueue the next points not yet handed out, up to ``slots``, and with ``key`` only those that
    share the first one's run (called under the study's lock, signals held).

    What has been handed out is read from the trials themselves (each holds its ``point``), so
    there is no cursor to write beside them: every enqueue is one transaction, and a kill -9
    between two leaves the study consistent. A point whose every trial was interrupted (and
    whose re-queueing was cut short) is handed out again first.
    """
    owed, start = _points_handed_out(study)
    candidates = owed or list(range(start, len(points)))
    if not candidates:
        return False
    chosen = [candidates[0]]
    for index in candidates[1:]:
        if len(chosen) >= slots or key is None or key(points[index]) != key(points[chosen[0]]):
            break
        chosen.append(index)
    for index in chosen:
        study.enqueue_trial(points[index], user_attrs={records.POINT: index})
    return True


def _points_handed_out(study: optuna.Study) -> tuple[list[int], int]:
    """The points owed again, and the first point never handed out (read under the study's lock).

    A point is owed when none of its trials is waiting, running or finished and no failure
    of its own gave its verdict (``_owed``). A point whose trials were all interrupted (Ctrl-C,
    SIGTERM, a failing storage: ``fail_reason`` says so) or failed silently for a worker that
    died (kill -9, a dead machine) is owed however often that happened: none of it is the
    point's fault. Either is re-queued in the same hold of the study's lock as its failing
    (``_requeue``, ``requeue_stale_trials``), so a point that is failed and not queued again
    was left so by a worker that died in between (or by a storage failure), and it is handed
    out again before any new point.
    """
    seen = _trials_by_point(study)
    return sorted(point for point, trials in seen.items() if _owed(trials)), max(seen, default=-1) + 1


def _trials_by_point(study: optuna.Study) -> dict[int, list[optuna.trial.FrozenTrial]]:
    seen: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False):
        if (index := records.point(trial)) is not None:
            seen.setdefault(index, []).append(trial)
    return seen


def _own_failures(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    """The reasons of the failures the point itself caused: its training raised (not an interrupt, not a kill)."""
    reasons = [records.fail_reason(t) for t in trials if t.state == TrialState.FAIL]
    return [r for r in reasons if r and not r.startswith(records.INTERRUPTED)]


def _owed(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Whether a point must be handed out again: all its trials failed, and its own failures left it retries.

    A divergence is the point's result (its loss became NaN or infinite), never retried; any
    other failure of its own (out of memory, an error while training) is, ``MAX_RETRIES``
    times in all.
    """
    if any(t.state != TrialState.FAIL for t in trials):
        return False
    own = _own_failures(trials)
    return not any(r.startswith(records.DIVERGED) for r in own) and len(own) < MAX_RETRIES


def missing_points(study: optuna.Study) -> list[str]:
    """The handed-out points that have no result and will not run again, each with why (for the run's last line).

    A point is missing when none of its trials finished, none waits or runs, and it is not
    owed: its own training failed ``MAX_RETRIES`` times. A diverged point is not missing: its
    divergence is its result.
    """
    missing = []
    for point, trials in sorted(_trials_by_point(study).items()):
        own = _own_failures(trials)
        if _owed(trials) or any(t.state != TrialState.FAIL for t in trials):
            continue
        if not any(r.startswith(records.DIVERGED) for r in own):
            last = max(trials, key=lambda t: t.number)
            missing.append(f"point {point} (trial {last.number}: {own[-1] if own else 'no reason stored'})")
    return missing


def _requeue(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """Close interrupted trials as FAIL; a grid or oat point must still run: queue it again.

    Called under the study's lock, so that no claim sees a point failed and not queued, and
    with a group's trials at once, so that they wait next to each other. A trial another
    worker closed meanwhile (this one was stopped past its heartbeat) was queued again there.
    """
    for trial in trials:
        if study._storage.get_trial(trial._trial_id).state.is_finished():
            continue
        fixed = fixed_params(study, trial)
        study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        if fixed is not None:
            attrs = {records.RETRY_OF_ATTR: trial.number}
            if records.POINT in trial.user_attrs:
                attrs[records.POINT] = trial.user_attrs[records.POINT]
            study.enqueue_trial(fixed, user_attrs=attrs)


def _free_memory() -> None:
    """A failed trial (out of memory, say) leaves its tensors in a reference cycle of the exception."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
