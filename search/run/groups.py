"""The one trial path: a group of trials asked together, trained together, each told when done.

A sampler's trial is a group of one. Grid and oat points whose configurations share a
``search.space.point_key`` (they differ only in activation, loss, learning rate, epochs, weight
decay and dropout) are enqueued next to each other; a worker takes the run of waiting points
at the head of the queue, asks a trial for each, and trains them together
(``Objective.run_group``), every point under each of the study's seeds. When fewer groups
are left than workers, a worker takes only a part of one (``Part``), whole networks, and
leaves the rest waiting for the next. Each trial is
told as soon as all its seeds are done, with the histories and model it would have had
alone. A heartbeat covers every trial of the group while it trains. A group of points
keeps a checkpoint of its run, so that the points an interrupt queued again resume it.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from search import records
from search.run.interrupts import Interrupts
from search.run.outputs import note_interrupted
from trainer import TrainConfig
from trainer.objective import Objective, TrialFailed, TrialResult

Key = Callable[[dict[str, Any]], TrainConfig]
Values = Callable[[float, TrialResult], list[float]]  # a trial's objectives from its accuracy and result


def waiting_group(study: optuna.Study, key: Key, limit: int, part: Part | None = None) -> int:
    """How many of the waiting trials at the head of the queue to train as one group (at most ``limit``).

    They share one ``key``. With ``part``, a group bigger than it is split: the claim ends at
    the first point after which no network of the claim comes again (``clean_cut``) and that
    holds at least ``part.size`` networks, so that the rest of the group is left waiting for
    another worker and no network is trained twice.
    """
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    waiting = sorted(waiting, key=lambda t: t.number)
    if not waiting:
        return 0
    first = key(records.fixed_params(waiting[0]))
    count = 1
    while count < min(limit, len(waiting)) and key(records.fixed_params(waiting[count])) == first:
        count += 1
    if part is None:
        return count
    return clean_cut([part.network(records.fixed_params(t)) for t in waiting[:count]], part.size)


@dataclass(frozen=True)
class Part:
    """How much of a group one worker claims: ``size`` networks, told apart by ``network``."""

    size: int
    network: Callable[[dict[str, Any]], TrainConfig]


def clean_cut(networks: Sequence[Hashable], size: int) -> int:
    """The shortest prefix of ``networks`` that holds at least ``size`` of them and none found after it.

    ``networks`` names each point's network (points of one network, say its 5, 14 and 25
    epochs, are trained once for all); the whole list when no shorter prefix does.
    """
    last = {network: i for i, network in enumerate(networks)}
    seen: set[Hashable] = set()
    reach = 0  # the last position of any network in the prefix
    for i, network in enumerate(networks):
        seen.add(network)
        reach = max(reach, last[network])
        if reach == i and len(seen) >= size:
            return i + 1
    return len(networks)


def parts_per_group(workers: int, groups_left: int) -> int:
    """Into how many parts each group is split so that ``workers`` have work while ``groups_left`` remain."""
    return max(1, -(-workers // max(groups_left, 1)))


class Heartbeats:
    """Records a heartbeat for each trial still in ``trials`` every ``interval`` seconds, in a thread."""

    def __init__(self, study: optuna.Study, trial_ids: list[int]) -> None:
        # Optuna records heartbeats only inside Study.optimize, which runs one trial at a time:
        # a group's heartbeats are recorded through the storage, by trial id.
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


def fixed_params(study: optuna.Study, trial: optuna.Trial) -> dict[str, Any] | None:
    """A live trial's enqueued point (None for a sampler's trial)."""
    # A live Trial has no public view of its system attrs, where Optuna keeps an enqueued point.
    return study._storage.get_trial_system_attrs(trial._trial_id).get(records.FIXED_PARAMS)


def run_group(
    study: optuna.Study,
    objective: Objective,
    count: int,
    release_lock: Callable[[], None],
    interrupts: Interrupts,
    report: Callable[[optuna.trial.FrozenTrial], None],
    requeue: Callable[[optuna.Study, optuna.Trial], None],
    values: Values | None = None,
) -> bool:
    """Ask ``count`` trials (the waiting points at the head of the queue, else the sampler's) and train them.

    Called with the study's lock held and signals held back, like a single trial: the
    trials are created before the lock is released, and each is closed with signals held.
    A trial still open when the run is interrupted or fails is closed as FAIL, and its
    point queued again when interrupted. Returns False when a trial failed. With ``values``, a
    trial is told the objectives it gives from its accuracy and result (a multi-objective study).
    """
    with warnings.catch_warnings():  # Optuna's hint to use optimize(): the heartbeats are recorded below
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        # points: the trials that are enqueued points, queued again and resumed when interrupted (a
        # sampler's trial is not: nothing asks for its point again)
        trials, points = [], set()
        for _ in range(count):
            started = time.perf_counter()
            trial = study.ask()
            seconds = time.perf_counter() - started
            trials.append(trial)
            if fixed_params(study, trial) is not None:
                points.add(trial.number)
            else:  # a sampler's proposal: its decision time
                trial.set_user_attr(records.ASK_SECONDS, round(seconds, 4))
    for trial in trials:  # its parameters now: a trial closed before training still shows its point
        objective.configs(trial)
    if count > 1:
        for trial in trials:  # which trials' training time is one and the same
            trial.set_user_attr(records.SHARED_RUN_ATTR, trials[0].number)
    open_trials = {t.number: t for t in trials}
    ok = True

    def done(trial: optuna.Trial, result: TrialResult) -> None:
        nonlocal ok
        interrupts.hold()
        try:
            try:
                accuracy = objective.conclude(trial, result)
                frozen = study.tell(trial, values(accuracy, result) if values is not None else accuracy)
            except optuna.TrialPruned:
                frozen = study.tell(trial, state=TrialState.PRUNED)
            except TrialFailed as e:
                trial.set_user_attr(records.FAIL_REASON, str(e))
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
                objective.run_group(trials, done, resumable=len(points) == len(trials))
            finally:
                interrupts.hold()
        except TrialFailed as e:
            ok = False
            for trial in list(open_trials.values()):
                trial.set_user_attr(records.FAIL_REASON, str(e))
                report(study.tell(trial, state=TrialState.FAIL))
        except BaseException as e:
            for trial in list(open_trials.values()):
                if isinstance(e, KeyboardInterrupt):
                    trial.set_user_attr(records.FAIL_REASON, records.INTERRUPTED)
                    if trial.number in points:
                        note_interrupted(trial)
                    requeue(study, trial)
                else:
                    trial.set_user_attr(records.FAIL_REASON, f"{type(e).__name__}: {e}")
                    study.tell(trial, state=TrialState.FAIL)
            raise
    return ok
