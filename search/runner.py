"""Running a study: preparing it once, then one or more workers that claim and run trials."""

from __future__ import annotations

import dataclasses
import datetime
import gc
import logging
import math
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from search import records
from search.budget import Counts, StudyLock, Verdict, claim, fail_silent_trials
from search.interrupts import NONE, Interrupts
from search.outputs import record_trial
from search.progress import Event
from search.shared import Key, Part, parts_per_group, run_group, waiting_group
from search.space import point_key, point_network
from search.spec import StudySpec
from search.storage import (
    INTERRUPTED,
    MAX_RETRIES,
    artifact_dir,
    artifact_store,
    close_open_trials,
    mask_url,
    open_storage,
    quiet_optuna,
    storage_failure,
)
from trainer import TrainConfig, load_mnist, optim, resolve_device, split
from trainer.checkpoint import CheckpointFolder
from trainer.objective import GroupProgress, Objective
from trainer.optim import FlatOptimizer

OBJECTIVE_NAME = "validation accuracy"
POLL_SECONDS = 1.0
REQUEUE_GRACE_SECONDS = 120.0  # see _points_handed_out

Emit = Callable[[Event], None]


class StudyError(Exception):
    """The study cannot be run as asked (it exists with another kind, direction...)."""


def prepare(spec: StudySpec) -> optuna.Study:
    """Create the study, or check that the existing one is the same kind; return it."""
    storage = open_storage(spec.storage, spec.heartbeat)
    with StudyLock(spec.storage, spec.name):
        study = optuna.create_study(study_name=spec.name, storage=storage, direction="maximize", load_if_exists=True)
        if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise StudyError(
                f"study {spec.name!r} exists with direction "
                f"{', '.join(d.name.lower() for d in study.directions)}; this service "
                "maximizes validation accuracy: pass another --study-name"
            )
        _settle_identity(study, spec)
    return study


def _settle_identity(study: optuna.Study, spec: StudySpec) -> None:
    """Write the study's identity, or check it against ``spec``; called under the study's lock.

    Optuna writes one attribute per transaction, so ``kind`` is written last and marks a
    finished creation: a study without it was cut short (kill -9) before any trial ran,
    and its creation is done again here. A finished study missing other keys (made by an
    older version that wrote ``kind`` first) gets them added when the present ones match.
    """
    identity = spec.identity()
    attrs = study.user_attrs
    if "kind" in attrs:
        if attrs["kind"] == spec.kind == "grid" and "grid_order" not in attrs and study.get_trials(deepcopy=False):
            raise StudyError(
                f"study {spec.name!r} was made by an older version that ordered the grid's points otherwise: "
                "resuming it would run some points twice and skip others; pass another --study-name"
            )
        mismatch = ", ".join(f"{k}={attrs[k]!r}" for k, v in identity.items() if k in attrs and attrs[k] != v)
        if mismatch:
            raise StudyError(
                f"study {spec.name!r} exists with {mismatch}, not {spec.kind} as asked here: "
                "pass the same options or another --study-name"
            )
    # optuna-dashboard reads the objective's name from here (its set_objective_names is deprecated).
    if study.metric_names != [OBJECTIVE_NAME]:
        study.set_metric_names([OBJECTIVE_NAME])
    for key in [k for k in identity if k != "kind"] + ["kind"]:
        if attrs.get(key, _MISSING) != identity[key]:
            study.set_user_attr(key, identity[key])


_MISSING = object()


def run_worker(spec: StudySpec, worker: int, emit: Emit, interrupts: Interrupts = NONE) -> None:
    """Claim and run trials until the budget is reached, the points run out or time is up."""
    quiet_optuna()
    device = resolve_device(spec.device)
    if device.type == "cpu" and spec.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.workers))
    if device.type == "cpu" and spec.compile == "on":
        _compile_update(lambda text: emit({"type": "note", "worker": worker, "text": text}))
    storage = open_storage(spec.storage, spec.heartbeat)
    study = optuna.load_study(study_name=spec.name, storage=storage, pruner=spec.pruner_object())
    study.sampler = spec.sampler(seed_offset=_seed_offset(storage, study, worker))
    splits = split(load_mnist(spec.data_dir, device, spec.download), spec.validation, spec.limit_train, spec.limit_test)
    store = artifact_store(spec.storage, spec.artifacts)
    objective = Objective(
        TrainConfig(seed=spec.seed, device=str(device)),
        splits,
        spec.distributions,
        seeds=spec.seeds,
        after_run=lambda trial, result: record_trial(trial, result, store),
        on_progress=lambda progress: emit(epoch_event(progress, worker)),
        # A running group's checkpoint lies beside the study's artifacts (the store's own folder).
        checkpoints=checkpoint_folder(spec),
    )
    points = spec.points()
    budget = len(points) if points is not None and spec.trials is None else spec.budget
    key: Key | None = None
    part: Callable[[int], Part | None] = lambda slots: None  # noqa: E731
    if points is not None and spec.share_runs:
        key = lambda point: point_key(point, objective.base)  # noqa: E731
        if spec.workers > 1:
            part = _Parts(study, points, objective.base, spec.workers)
    next_point = (lambda slots: _enqueue_next(study, points, slots, key)) if points is not None else None
    lock = StudyLock(spec.storage, spec.name)
    report = lambda frozen: emit(trial_event(frozen, worker))  # noqa: E731
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
                    count = waiting_group(study, key, slots, part(slots)) if key is not None else 1
                    if not run_group(study, objective, max(count, 1), lock.release, interrupts, report, _requeue):
                        _free_memory()
            finally:
                lock.release()
        if verdict is Verdict.DONE:
            return
        if verdict is Verdict.WAIT:
            time.sleep(POLL_SECONDS)
            with interrupts.held_section():
                optuna.storages.fail_stale_trials(study)
                fail_silent_trials(storage, study, 2 * spec.heartbeat)


class _Parts:
    """The part of a group a worker claims when fewer groups are left than ``workers`` (None: all of it).

    The groups left are those of the waiting points and of the next points not yet handed
    out, as many as the budget's free ``slots``. Each is split into ``parts_per_group``
    parts of whole networks, so that a study's last groups (or a small budget's one) keep
    every worker busy. Called under the study's lock, before ``waiting_group``.
    """

    def __init__(self, study: optuna.Study, points: list[dict[str, Any]], base: TrainConfig, workers: int) -> None:
        self.study, self.workers, self.base = study, workers, base
        self.keys = [point_key(point, base) for point in points]
        networks: dict[TrainConfig, set[TrainConfig]] = {}
        for point, key in zip(points, self.keys, strict=True):
            networks.setdefault(key, set()).add(point_network(point, base))
        self.networks = {key: len(members) for key, members in networks.items()}

    def __call__(self, slots: int) -> Part | None:
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            return None
        head = min(waiting, key=lambda t: t.number).system_attrs["fixed_params"]
        owed, start = _points_handed_out(self.study, REQUEUE_GRACE_SECONDS)
        left = {point_key(t.system_attrs["fixed_params"], self.base) for t in waiting}
        later = [*owed, *range(start, len(self.keys))][: max(slots - len(waiting), 0)]
        left.update(self.keys[i] for i in later)
        parts = parts_per_group(self.workers, len(left))
        if parts == 1:
            return None
        size = -(-self.networks.get(point_key(head, self.base), 1) // parts)
        return Part(size, lambda point: point_network(point, self.base))


def _compile_update(note: Callable[[str], None]) -> None:
    """Switch this worker to the compiled Adadelta update and compile it now; on failure, stay eager."""
    # Inductor's C++ build warns that no CUDA runtime is found, which says nothing on a CPU worker.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    optim.compile_updates()
    try:
        FlatOptimizer("adadelta", torch.zeros(2), torch.zeros(2)).step(torch.ones(2))
    except Exception as e:  # noqa: BLE001 - no C++ compiler, an inductor error...: the eager update serves
        optim.compile_updates(False)
        cause = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"
        note(f"the Adadelta update could not be compiled ({cause}); training with the eager one")


def checkpoint_folder(spec: StudySpec) -> CheckpointFolder:
    """The checkpoints of the study's running groups: beside its artifacts, in the store's own folder."""
    artifact_store(spec.storage, spec.artifacts)  # makes the folder when it is not there yet
    return CheckpointFolder(artifact_dir(spec.storage, spec.artifacts), spec.name)


def _seed_offset(storage: optuna.storages.RDBStorage, study: optuna.Study, worker: int) -> int:
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
    owed, start = _points_handed_out(study, REQUEUE_GRACE_SECONDS)
    candidates = owed or list(range(start, len(points)))
    if not candidates:
        return False
    chosen = [candidates[0]]
    for index in candidates[1:]:
        if len(chosen) >= slots or key is None or key(points[index]) != key(points[chosen[0]]):
            break
        chosen.append(index)
    for index in chosen:
        study.enqueue_trial(points[index], user_attrs={"point": index})
    return True


def _points_handed_out(study: optuna.Study, grace_seconds: float) -> tuple[list[int], int]:
    """The points owed again, and the first point never handed out.

    A point is owed when every trial of it failed without the point's fault, the last over
    ``grace_seconds`` ago: closed as interrupted (``fail_reason``), or failed silently for a
    dead worker (no ``fail_reason``; at most ``MAX_RETRIES`` times, Optuna's retry limit).
    Both are re-queued by a second write right after the first (our requeue, Optuna's retry
    callback), and a worker that has not made it within the grace died between the two.
    """
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_seconds)  # Optuna stores naive local time
    seen: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False):
        if "point" in trial.user_attrs:
            seen.setdefault(int(trial.user_attrs["point"]), []).append(trial)

    def owed(trials: list[optuna.trial.FrozenTrial]) -> bool:
        reasons = [str(t.user_attrs.get("fail_reason", "")) for t in trials]
        return (
            all(t.state == TrialState.FAIL and t.datetime_complete and t.datetime_complete < cutoff for t in trials)
            and all(not r or r.startswith(INTERRUPTED) for r in reasons)
            and reasons.count("") <= MAX_RETRIES
        )

    return sorted(point for point, trials in seen.items() if owed(trials)), max(seen, default=-1) + 1


def _requeue(study: optuna.Study, trial: optuna.Trial) -> None:
    """Close an interrupted trial as FAIL; a grid or oat point must still run: queue it again."""
    # A live Trial has no public view of its system attrs, where Optuna keeps an enqueued point.
    fixed = study._storage.get_trial_system_attrs(trial._trial_id).get("fixed_params")
    study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    if fixed is not None:
        attrs = {records.RETRY_OF_ATTR: trial.number}
        if "point" in trial.user_attrs:
            attrs["point"] = trial.user_attrs["point"]
        study.enqueue_trial(fixed, user_attrs=attrs)


def _free_memory() -> None:
    """A failed trial (out of memory, say) leaves its tensors in a reference cycle of the exception."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def trial_event(frozen: optuna.trial.FrozenTrial, worker: int = 0) -> Event:
    """What the terminal shows of a closed trial (sent from a worker process to ``search.progress``)."""
    values = [v for v in records.seed_values(frozen) if not math.isnan(v)]
    return {
        "type": "trial",
        "worker": worker,
        "number": frozen.number,
        "state": frozen.state.name,
        "value": frozen.value,
        "test_accuracy": records.test_accuracy(frozen),
        # The seeds' sample standard deviation: how much of a difference between points is noise.
        "spread": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "seconds": frozen.user_attrs.get("train_seconds"),
        "epochs": records.epochs_run(frozen),
        "params": frozen.params,
        "reason": frozen.user_attrs.get("fail_reason"),
    }


def epoch_event(progress: GroupProgress, worker: int = 0) -> Event:
    """Where a worker's running group stands (sent to ``search.progress`` after each epoch)."""
    return {"type": "epoch", "worker": worker, "fraction": progress.fraction, **dataclasses.asdict(progress)}


def run_workers(spec: StudySpec, emit: Emit) -> None:
    """Run the study's workers: in this process for one, else in spawned processes.

    Ctrl-C or SIGTERM reach every worker; each closes its running trial before exiting.
    A worker's error is raised here as one ``StudyError``. Once no point is left to run
    or running, no checkpoint of the study is left either.
    """
    interrupts = Interrupts().install()
    try:
        if spec.workers == 1:
            run_worker(spec, 0, emit, interrupts)
        else:
            _run_processes(spec, emit)
    finally:
        interrupts.uninstall()
    study = optuna.load_study(study_name=spec.name, storage=open_storage(spec.storage, spec.heartbeat))
    if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        # A group whose last trial was told just before an interrupt left a checkpoint nobody resumes.
        checkpoint_folder(spec).clear()


def _run_processes(spec: StudySpec, emit: Emit) -> None:
    ctx = multiprocessing.get_context("spawn")
    events: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(spec, i, events)) for i in range(spec.workers)]
    for p in procs:
        p.start()
    errors: list[str] = []
    try:
        _drain(procs, events, emit, errors, stop_on_error=True)
    except KeyboardInterrupt:
        # A Ctrl-C in the terminal reached the workers too, a SIGTERM to this process did not:
        # tell them all (a second signal is ignored by a worker already stopping).
        for p in procs:
            if p.is_alive():
                p.terminate()
        _drain(procs, events, emit, errors, timeout=120)
        for p in procs:
            if p.is_alive():  # its RUNNING trial is failed and retried by the heartbeat
                p.kill()
        raise
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if errors:
        raise StudyError(errors[0])
    if failed:
        raise StudyError(f"a worker exited with code {failed[0]}; its trial, if any, is retried by the heartbeat")


def _drain(
    procs: list,
    events: multiprocessing.Queue,
    emit: Emit,
    errors: list[str],
    timeout: float | None = None,
    stop_on_error: bool = False,
) -> None:
    """Pass the workers' events on until they have all exited (or ``timeout`` passes).

    With ``stop_on_error``, the first worker error stops the others (each closes its trial).
    """
    deadline = time.monotonic() + timeout if timeout else None
    while any(p.is_alive() for p in procs) or not events.empty():
        if deadline is not None and time.monotonic() > deadline:
            return
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            continue
        if event["type"] == "error":
            errors.append(event["message"])
            if stop_on_error:
                for p in procs:
                    if p.is_alive():
                        p.terminate()
        else:
            emit(event)
    for p in procs:
        p.join()


def _worker_main(spec: StudySpec, worker: int, events: multiprocessing.Queue) -> None:
    interrupts = Interrupts().install()
    try:
        run_worker(spec, worker, events.put, interrupts)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line, not a child's traceback
        # This worker is ending: a SIGTERM from the parent (another worker failed too) must not cut
        # the closing of its trials below, which waits on a failing storage, into a traceback.
        interrupts.stopping = True
        cause = storage_failure(e)
        text = str(e).strip().splitlines()
        message = text[0] if text else type(e).__name__
        if cause is not None:
            message = f"storage {mask_url(spec.storage)} failed: {cause}; {close_open_trials(cause)}"
        events.put({"type": "error", "message": f"worker {worker}: {message}"})
        raise SystemExit(1) from None
