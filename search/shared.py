"""Grid and oat points that share one run: each is its own trial, trained together with the others.

Points that differ only in ``epochs`` and ``learning_rate`` (``trainer.run_key``) are
enqueued next to each other. A worker takes the run of waiting points at the head of the
queue, asks a trial for each, and trains them together (``Objective.run_together``);
each trial is told as soon as its own epochs are done, with the history and model it
would have had alone. A heartbeat covers every trial of the run while it trains.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from search.interrupts import Interrupts
from trainer import RunResult, TrainConfig
from trainer.loop import run_key
from trainer.objective import Objective, TrialFailed

Key = Callable[[dict[str, Any]], TrainConfig]
SHARED_RUN_ATTR = "shared_run"  # the first trial number of the run a trial shared


def point_key(base: TrainConfig) -> Key:
    """The ``run_key`` of a point's configuration: equal keys can share a run."""
    return lambda point: run_key(base.replace(**point))


def waiting_run(study: optuna.Study, key: Key, limit: int) -> int:
    """How many of the waiting trials at the head of the queue share one run (at most ``limit``)."""
    waiting = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,))
    waiting = sorted(waiting, key=lambda t: t.number)
    if not waiting:
        return 0
    first = key(waiting[0].system_attrs["fixed_params"])
    count = 1
    while count < min(limit, len(waiting)) and key(waiting[count].system_attrs["fixed_params"]) == first:
        count += 1
    return count


class Heartbeats:
    """Records a heartbeat for each trial still in ``trials`` every ``interval`` seconds, in a thread."""

    def __init__(self, study: optuna.Study, trial_ids: list[int]) -> None:
        self.storage, self.trial_ids = study._storage, list(trial_ids)
        self.interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in list(self.trial_ids):
                self.storage.record_heartbeat(trial_id)

    def __enter__(self) -> Heartbeats:
        if self.interval is not None:
            for trial_id in self.trial_ids:
                self.storage.record_heartbeat(trial_id)
            self._thread.start()
        return self

    def done(self, trial_id: int) -> None:
        self.trial_ids.remove(trial_id)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def run_shared(
    study: optuna.Study,
    objective: Objective,
    count: int,
    release_lock: Callable[[], None],
    interrupts: Interrupts,
    report: Callable[[optuna.trial.FrozenTrial], None],
    requeue: Callable[[optuna.Study, optuna.Trial], None],
) -> bool:
    """Ask ``count`` trials for the waiting points at the head of the queue and train them as one run.

    Called with the study's lock held and signals held back, like a single trial: the
    trials are created before the lock is released, and each is closed with signals held.
    A trial still open when the run is interrupted or fails is closed as FAIL, and its
    point queued again when interrupted. Returns False when a trial failed.
    """
    with warnings.catch_warnings():  # Optuna's hint to use optimize(): the heartbeats are recorded below
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        trials = [study.ask() for _ in range(count)]
    if count > 1:
        for trial in trials:  # which trials' training time is one and the same
            trial.set_user_attr(SHARED_RUN_ATTR, trials[0].number)
    open_trials = {t.number: t for t in trials}
    ok = True

    def done(trial: optuna.Trial, result: RunResult) -> None:
        nonlocal ok
        interrupts.hold()
        try:
            try:
                frozen = study.tell(trial, objective.conclude(trial, result))
            except optuna.TrialPruned:
                frozen = study.tell(trial, state=TrialState.PRUNED)
            except TrialFailed:
                frozen = study.tell(trial, state=TrialState.FAIL)
                ok = False
            del open_trials[trial.number]
            heartbeats.done(trial._trial_id)
            report(frozen)
        finally:
            interrupts.release()

    with Heartbeats(study, [t._trial_id for t in trials]) as heartbeats:
        release_lock()
        try:
            try:
                interrupts.release()  # raises an interrupt held back since the claim
                objective.run_together(trials, done)
            finally:
                interrupts.hold()
        except TrialFailed:
            ok = False
            for trial in list(open_trials.values()):
                report(study.tell(trial, state=TrialState.FAIL))
        except BaseException as e:
            for trial in list(open_trials.values()):
                if isinstance(e, KeyboardInterrupt):
                    trial.set_user_attr("fail_reason", "interrupted")
                    requeue(study, trial)
                else:
                    trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
                    study.tell(trial, state=TrialState.FAIL)
            raise
    return ok
