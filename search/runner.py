"""Running a study: preparing it once, then one or more workers that claim and run trials."""

from __future__ import annotations

import datetime
import gc
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from search.budget import Counts, StudyLock, Verdict, claim, fail_silent_trials
from search.interrupts import NONE, Interrupts
from search.outputs import record_trial
from search.progress import Event
from search.shared import Key, point_key, run_shared, waiting_run
from search.spec import StudySpec
from search.storage import (
    INTERRUPTED,
    MAX_RETRIES,
    artifact_store,
    close_open_trials,
    mask_url,
    open_storage,
    quiet_optuna,
    storage_failure,
)
from trainer import TrainConfig, load_mnist, resolve_device, split
from trainer.objective import Objective, TrialFailed

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
    storage = open_storage(spec.storage, spec.heartbeat)
    study = optuna.load_study(study_name=spec.name, storage=storage, pruner=spec.pruner_object())
    study.sampler = spec.sampler(seed_offset=_seed_offset(storage, study, worker))
    splits = split(load_mnist(spec.data_dir, device, spec.download), spec.validation, spec.limit_train, spec.limit_test)
    store = artifact_store(spec.storage, spec.artifacts)
    objective = Objective(
        TrainConfig(seed=spec.seed, device=str(device)),
        splits,
        spec.distributions,
        after_run=lambda trial, result: record_trial(trial, result, store),
    )
    points = spec.points()
    budget = len(points) if points is not None and spec.trials is None else spec.budget
    key = point_key(objective.base) if points is not None and spec.share_runs else None
    next_point = (lambda slots: _enqueue_next(study, points, slots, key)) if points is not None else None
    lock = StudyLock(spec.storage, spec.name)
    deadline = time.monotonic() + spec.timeout if spec.timeout else None
    while deadline is None or time.monotonic() < deadline:
        with interrupts.held_section():  # a claim is never cut in half
            lock.acquire()
            try:
                counts = Counts.of(storage, study)
                verdict = claim(counts, budget, next_point)
                if verdict is Verdict.RUN and key is not None:
                    count = waiting_run(study, key, budget - counts.finished - counts.running)
                    report = lambda frozen: emit(trial_event(frozen, worker))  # noqa: E731
                    if not run_shared(study, objective, count, lock.release, interrupts, report, _requeue_if_fixed):
                        _free_memory()
                elif verdict is Verdict.RUN:
                    _run_one(study, objective, lock, worker, emit, interrupts)
            finally:
                lock.release()
        if verdict is Verdict.DONE:
            return
        if verdict is Verdict.WAIT:
            time.sleep(POLL_SECONDS)
            with interrupts.held_section():
                optuna.storages.fail_stale_trials(study)
                fail_silent_trials(storage, study, 2 * spec.heartbeat)


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


def _run_one(
    study: optuna.Study, objective: Objective, lock: StudyLock, worker: int, emit: Emit, interrupts: Interrupts
) -> None:
    """Run one trial. Called with the lock held and signals held back: the trial's creation and
    its closing are never interrupted; its training is, and Optuna then closes it as FAIL."""
    started: dict[str, optuna.Trial] = {}
    outcome: dict[str, str] = {}

    def run(trial: optuna.Trial) -> float:
        started["trial"] = trial
        lock.release()
        try:
            try:
                interrupts.release()  # raises an interrupt held back since the claim
                return objective(trial)
            finally:
                interrupts.hold()  # Optuna's tell, next, is not cut either
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise

    def report(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        outcome["state"] = frozen.state.name
        emit(trial_event(frozen, worker))

    try:
        study.optimize(run, n_trials=1, catch=(TrialFailed,), callbacks=[report], gc_after_trial=False)
    except KeyboardInterrupt:
        trial = started.get("trial")
        if trial is not None:
            _requeue_if_fixed(study, trial)
        raise
    if outcome.get("state") == "FAIL":
        _free_memory()


def _requeue_if_fixed(study: optuna.Study, trial: optuna.Trial) -> None:
    """A grid or oat point whose trial was interrupted must still run: queue it again."""
    frozen = study._storage.get_trial(trial._trial_id)
    if frozen.state != optuna.trial.TrialState.FAIL:
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    fixed = frozen.system_attrs.get("fixed_params")
    if fixed is not None:
        attrs = {"retry_of": trial.number}
        if "point" in frozen.user_attrs:
            attrs["point"] = frozen.user_attrs["point"]
        study.enqueue_trial(fixed, user_attrs=attrs)


def _free_memory() -> None:
    """A failed trial (out of memory, say) leaves its tensors in a reference cycle of the exception."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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
    A worker's error is raised here as one ``StudyError``.
    """
    interrupts = Interrupts().install()
    try:
        if spec.workers == 1:
            run_worker(spec, 0, emit, interrupts)
        else:
            _run_processes(spec, emit)
    finally:
        interrupts.uninstall()


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
        cause = storage_failure(e)
        text = str(e).strip().splitlines()
        message = text[0] if text else type(e).__name__
        if cause is not None:
            message = f"storage {mask_url(spec.storage)} failed: {cause}; {close_open_trials(cause)}"
        interrupts.stopping = True  # the parent stops every worker on this error: this one is already ending
        events.put({"type": "error", "message": f"worker {worker}: {message}"})
        raise SystemExit(1) from None
