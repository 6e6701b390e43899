"""Local worker processes: one study's workers spawned, their events passed on, their errors as one line."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import time

import optuna
from optuna.trial import TrialState

from search.run.interrupts import Interrupts
from search.run.progress import Emit
from search.run.study import StudyError, checkpoint_folder
from search.run.worker import missing_points, run_worker
from search.spec import StudySpec
from search.storage import MAX_RETRIES, Store, failure_message, open_store


def run_workers(
    spec: StudySpec, emit: Emit, store: Store | None = None, interrupts: Interrupts | None = None
) -> None:
    """Run the study's workers: in this process for one (on ``store``, opened here when None), else in
    spawned processes, each opening its own.

    Ctrl-C or SIGTERM reach every worker; each closes its running trial before exiting.
    ``interrupts``: the caller's, installed (else installed here for the run). A worker's error
    is raised here as one ``StudyError``, and so is a grid or oat point left without a result
    (``missing_points``): such a run never ends as done. Once no point is left to run or
    running, no checkpoint of the study is left either.
    """
    store = store or open_store(spec.storage, spec.heartbeat, spec.artifacts)
    own = interrupts is None
    interrupts = Interrupts().install() if interrupts is None else interrupts
    try:
        if spec.workers == 1:
            run_worker(spec, 0, emit, interrupts, store)
        else:
            _run_processes(spec, emit)
    finally:
        if own:
            interrupts.uninstall()
    study = optuna.load_study(study_name=spec.name, storage=store.storage)
    if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        # A group whose last trial was told just before an interrupt left a checkpoint nobody resumes.
        checkpoint_folder(spec, study, store).clear()
    missing = missing_points(study) if spec.points() is not None else []
    if missing:
        raise StudyError(
            f"{len(missing)} point(s) failed {MAX_RETRIES} times in their own training and are not in the study: "
            + "; ".join(missing[:5])
            + ("; ..." if len(missing) > 5 else "")
        )


def _run_processes(spec: StudySpec, emit: Emit) -> None:
    ctx = multiprocessing.get_context("spawn")
    events: multiprocessing.Queue = ctx.Queue()
    parent = os.getpid()
    procs = [ctx.Process(target=_worker_main, args=(spec, i, events, parent)) for i in range(spec.workers)]
    compiles = ", compiles the Adadelta update" if spec.compile == "on" else ""
    emit({"type": "status", "text": f"starting {spec.workers} worker processes: each loads torch{compiles} "
          "and the data before its first group (seconds to a minute)"})  # fmt: skip
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


def _die_with(parent: int) -> None:
    """End this worker when its command ends, by any signal, SIGKILL too (Linux's PR_SET_PDEATHSIG).

    Else a command killed with SIGKILL leaves its workers training on, unseen; this way its
    trials are left RUNNING, as a one-process command's are, for the heartbeat of the next run.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the command died before the line above took effect
        os._exit(1)


def _worker_main(spec: StudySpec, worker: int, events: multiprocessing.Queue, parent: int) -> None:
    _die_with(parent)
    interrupts = Interrupts().install()
    try:
        run_worker(spec, worker, events.put, interrupts)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line, not a child's traceback
        # This worker is ending: a SIGTERM from the parent (another worker failed too) must not cut
        # the closing of its trials below, which waits on a failing storage, into a traceback.
        interrupts.stopping = True
        text = str(e).strip().splitlines()
        message = failure_message(spec.storage, e) or (text[0] if text else type(e).__name__)
        events.put({"type": "error", "message": f"worker {worker}: {message}"})
        raise SystemExit(1) from None
