"""Running a study: preparing it once, then one or more workers that claim and run trials."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch

from search.budget import Counts, StudyLock, Verdict, claim
from search.outputs import record_trial
from search.progress import Event
from search.spec import StudySpec
from search.storage import StorageError, artifact_store, open_storage, quiet_optuna
from trainer import TrainConfig, load_mnist, resolve_device, split
from trainer.objective import Objective, TrialFailed

OBJECTIVE_NAME = "validation accuracy"
POLL_SECONDS = 1.0

Emit = Callable[[Event], None]


class StudyError(Exception):
    """The study cannot be run as asked (it exists with another kind, direction...)."""


def prepare(spec: StudySpec) -> optuna.Study:
    """Create the study, or check that the existing one is the same kind; return it."""
    storage = open_storage(spec.storage, spec.heartbeat)
    with StudyLock(spec.storage, spec.name):
        study = optuna.create_study(study_name=spec.name, storage=storage, direction="maximize", load_if_exists=True)
        if study.direction != optuna.study.StudyDirection.MAXIMIZE or len(study.directions) != 1:
            raise StudyError(
                f"study {spec.name!r} exists with direction {study.directions[0].name.lower()}; this service "
                "maximizes validation accuracy: pass another --study-name"
            )
        existing = {k: study.user_attrs[k] for k in spec.identity() if k in study.user_attrs}
        if existing and existing != spec.identity():
            mismatch = ", ".join(f"{k}={v!r}" for k, v in existing.items() if spec.identity().get(k) != v)
            raise StudyError(
                f"study {spec.name!r} exists with {mismatch}, not {spec.kind} as asked here: "
                "pass the same options or another --study-name"
            )
        if not existing:
            for key, value in spec.identity().items():
                study.set_user_attr(key, value)
            # optuna-dashboard reads the objective's name from here (its set_objective_names is deprecated).
            study.set_metric_names([OBJECTIVE_NAME])
    return study


def run_worker(spec: StudySpec, worker: int, emit: Emit) -> None:
    """Claim and run trials until the budget is reached, the points run out or time is up."""
    quiet_optuna()
    device = resolve_device(spec.device)
    if device.type == "cpu" and spec.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.workers))
    storage = open_storage(spec.storage, spec.heartbeat)
    already = Counts.of(storage, optuna.load_study(study_name=spec.name, storage=storage))
    study = optuna.load_study(
        study_name=spec.name,
        storage=storage,
        # Distinct per worker and per command joining a study, yet reproducible for a fresh one.
        sampler=spec.sampler(seed_offset=7919 * worker + already.finished + already.failed),
        pruner=spec.pruner_object(),
    )
    splits = split(load_mnist(spec.data_dir, device, spec.download), spec.validation, spec.limit_train, spec.limit_test)
    store = artifact_store(spec.storage, spec.artifacts)
    objective = Objective(
        TrainConfig(seed=spec.seed, device=str(device)),
        splits,
        spec.distributions,
        after_run=lambda trial, result: record_trial(trial, result, store),
    )
    points = spec.points()
    next_point = (lambda: _enqueue_next(study, points)) if points is not None else None
    lock = StudyLock(spec.storage, spec.name)
    deadline = time.monotonic() + spec.timeout if spec.timeout else None
    while deadline is None or time.monotonic() < deadline:
        lock.acquire()
        try:
            verdict = claim(Counts.of(storage, study), spec.budget, next_point)
            if verdict is Verdict.RUN:
                _run_one(study, objective, lock, worker, emit)
        finally:
            lock.release()
        if verdict is Verdict.DONE:
            return
        if verdict is Verdict.WAIT:
            time.sleep(POLL_SECONDS)
            optuna.storages.fail_stale_trials(study)


def _enqueue_next(study: optuna.Study, points: list[dict[str, Any]]) -> bool:
    """Enqueue the next point not yet handed out (called under the study's lock)."""
    index = study.user_attrs.get("next_point", 0)
    if index >= len(points):
        return False
    study.enqueue_trial(points[index], user_attrs={"point": index})
    study.set_user_attr("next_point", index + 1)
    return True


def _run_one(study: optuna.Study, objective: Objective, lock: StudyLock, worker: int, emit: Emit) -> None:
    """Run one trial; the claim's lock is released as soon as the trial exists (RUNNING)."""
    started: dict[str, optuna.Trial] = {}

    def run(trial: optuna.Trial) -> float:
        lock.release()
        started["trial"] = trial
        try:
            return objective(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise

    def report(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        emit(trial_event(frozen, worker))

    try:
        study.optimize(run, n_trials=1, catch=(TrialFailed,), callbacks=[report], gc_after_trial=False)
    except KeyboardInterrupt:
        _ignore_further_interrupts()
        trial = started.get("trial")
        if trial is not None:  # Optuna has closed it as FAIL; a fixed point must still run
            fixed = study._storage.get_trial(trial._trial_id).system_attrs.get("fixed_params")
            if fixed is not None:
                study.enqueue_trial(fixed, user_attrs={"retry_of": trial.number})
        raise


def trial_event(frozen: optuna.trial.FrozenTrial, worker: int = 0) -> Event:
    return {
        "type": "trial",
        "worker": worker,
        "number": frozen.number,
        "state": frozen.state.name,
        "value": frozen.value,
        "test_accuracy": frozen.user_attrs.get("test_accuracy"),
        "seconds": frozen.user_attrs.get("train_seconds"),
        "epochs": len(frozen.user_attrs.get("history", [])),
        "params": frozen.params,
        "reason": frozen.user_attrs.get("fail_reason"),
    }


def run_workers(spec: StudySpec, emit: Emit) -> None:
    """Run the study's workers: in this process for one, else in spawned processes.

    Ctrl-C or SIGTERM reach every worker; each closes its running trial before exiting.
    A worker's error is re-raised here as one message.
    """
    if spec.workers == 1:
        with _sigterm_as_interrupt():
            run_worker(spec, 0, emit)
        return
    ctx = multiprocessing.get_context("spawn")
    events: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(spec, i, events), daemon=False) for i in range(spec.workers)]
    for p in procs:
        p.start()
    errors: list[str] = []
    try:
        with _sigterm_as_interrupt():
            _drain(procs, events, emit, errors)
    except KeyboardInterrupt:
        _ignore_further_interrupts()
        # A Ctrl-C in the terminal reached the workers too; a SIGTERM to this process did not.
        _drain(procs, events, emit, errors, timeout=3)
        for p in procs:
            if p.is_alive():
                p.terminate()
        _drain(procs, events, emit, errors, timeout=120)
        for p in procs:
            if p.is_alive():  # its RUNNING trial is failed and retried by the heartbeat
                p.kill()
        raise
    if errors:
        raise StudyError(errors[0])


def _drain(
    procs: list, events: multiprocessing.Queue, emit: Emit, errors: list[str], timeout: float | None = None
) -> None:
    """Pass the workers' events on until they have all exited (or ``timeout`` passes)."""
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
        else:
            emit(event)
    for p in procs:
        p.join()


def _worker_main(spec: StudySpec, worker: int, events: multiprocessing.Queue) -> None:
    from trainer import DataError

    with _sigterm_as_interrupt():
        try:
            run_worker(spec, worker, events.put)
        except KeyboardInterrupt:
            pass
        except (DataError, StorageError, StudyError, ValueError) as e:
            events.put({"type": "error", "message": str(e)})


class _sigterm_as_interrupt:  # noqa: N801 - used as a context manager
    """SIGTERM is handled like Ctrl-C, so that a killed worker closes its trial first."""

    def __enter__(self) -> None:
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread
            self._previous = None

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _ignore_further_interrupts() -> None:
    """While a trial is being closed after Ctrl-C, a second Ctrl-C must not cut the cleanup short."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
