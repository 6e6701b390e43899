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

import contextlib
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.run.interrupts import Interrupts
from search.run.outputs import note_interrupted
from search.storage import LockHeld, record_heartbeats
from trainer import TrainConfig
from trainer.model import parameter_count, weights_of
from trainer.objective import Objective, TrialFailed, TrialResult

Key = Callable[[dict[str, Any]], TrainConfig]
Values = Callable[[float, TrialResult], list[float]]  # a trial's objectives from its accuracy and result


def waiting_group(study: optuna.Study, key: Key, limit: int, part: Part | None = None) -> list[FrozenTrial]:
    """The waiting trials to train as one group: those of the first waiting point's ``key`` (at most ``limit``).

    They are taken wherever they wait in the queue, in trial order: points of two groups
    re-queued at once (two workers interrupted together) lie interleaved there, and each
    group still trains again as one. With ``part``, a group bigger than it is split: the
    claim ends at the first point after which no network of the claim comes again
    (``clean_cut``) and that holds at least ``part.size`` networks, so that the rest of the
    group is left waiting for another worker and no network is trained twice.
    """
    waiting = sorted(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)), key=lambda t: t.number)
    if not waiting:
        return []
    first = key(records.fixed_params(waiting[0]))
    group = [t for t in waiting if key(records.fixed_params(t)) == first][: max(limit, 1)]
    if part is None:
        return group
    return group[: clean_cut([part.network(records.fixed_params(t)) for t in group], part.size)]


def take(study: optuna.Study, claimed: Sequence[FrozenTrial]) -> list[optuna.Trial]:
    """Start the waiting trials ``claimed`` (under the study's lock); none of them: a new trial (``study.ask``).

    ``study.ask`` pops the head of the queue whatever it holds; a group's trials are taken
    by id instead, so that the trials trained are exactly the ones the claim chose.
    """
    if not claimed:
        return [study.ask()]
    trials = []
    for frozen in claimed:
        # Optuna's own pop (Study._pop_waiting_trial_id) is this call; under the lock it cannot lose.
        if not study._storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING):
            raise RuntimeError(f"trial {frozen.number} was taken by another worker while the study's lock was held")
        trials.append(optuna.Trial(study, frozen._trial_id))
    return trials


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
    """Records a heartbeat for each trial still in ``trials`` every ``interval`` seconds, in a thread.

    All of them in one short transaction per beat (``record_heartbeats``): the database's
    write lock is held for one statement or two, never across anything that can stop. A beat
    that finds the lock held (a stopped process holding it) says so once through ``note`` and
    is tried again at the next interval; the thread never dies of it.
    """

    def __init__(self, study: optuna.Study, trial_ids: list[int], note: Callable[[str], None] = print) -> None:
        # Optuna records heartbeats only inside Study.optimize, which runs one trial at a time:
        # a group's heartbeats are recorded through the storage, by trial id.
        self.storage, self.trial_ids, self.note = study._storage, list(trial_ids), note
        self.interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._waiting = False

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat_once()

    def beat_once(self) -> None:
        """One heartbeat for every trial still running here; a held lock is said once and waited out."""
        try:
            record_heartbeats(self.storage, list(self.trial_ids), wait_seconds=self.interval)
        except LockHeld:
            if not self._waiting:
                self._waiting = True
                self.note(
                    "waiting for the storage: another process holds its write lock (a stopped worker?); "
                    "the heartbeat is tried again every interval"
                )
            return
        if self._waiting:
            self._waiting = False
            self.note("the storage's write lock is free again; heartbeats go on")

    def __enter__(self) -> Heartbeats:
        if self.interval is not None:
            record_heartbeats(self.storage, self.trial_ids)
            self._thread.start()
        return self

    def done(self, trial_id: int) -> None:
        if trial_id in self.trial_ids:
            self.trial_ids.remove(trial_id)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class MismatchedResult(RuntimeError):
    """A result that is not of the network its trial asked for: never recorded."""


def check_result(trial: optuna.Trial, asked: Sequence[TrainConfig], result: TrialResult) -> None:
    """Raise ``MismatchedResult`` unless each of ``result``'s runs trained the configuration ``asked`` for its seed.

    The configuration, parameter count and model a run returns travel with it from the
    network that trained; the trial's own parameters give ``asked``. Checked before the
    trial is told, so that a result can never be stored under another point's parameters.
    """
    runs = result.runs
    problems = [] if len(runs) == len(asked) else [f"{len(runs)} runs for {len(asked)} seeds"]
    for config, run in zip(asked, runs, strict=False):
        shape = f"{config.hidden_layers} x {config.hidden_units}"
        expected = weights_of(config)
        if run.config != config:
            problems.append(f"seed {config.seed}: trained {run.config.to_dict()}, asked {config.to_dict()}")
        elif run.parameter_count != expected or (run.model is not None and parameter_count(run.model) != expected):
            problems.append(f"seed {config.seed}: {run.parameter_count:,} parameters, {shape} has {expected:,}")
    if problems:
        raise MismatchedResult(f"trial {trial.number}: its result is not of its network ({'; '.join(problems)})")


def fixed_params(study: optuna.Study, trial: optuna.Trial) -> dict[str, Any] | None:
    """A live trial's enqueued point (None for a sampler's trial)."""
    # A live Trial has no public view of its system attrs, where Optuna keeps an enqueued point.
    return study._storage.get_trial_system_attrs(trial._trial_id).get(records.FIXED_PARAMS)


Requeue = Callable[[optuna.Study, list[optuna.Trial]], None]


def run_group(
    study: optuna.Study,
    objective: Objective,
    claimed: Sequence[FrozenTrial],
    release_lock: Callable[[], None],
    interrupts: Interrupts,
    report: Callable[[FrozenTrial], None],
    requeue: Requeue,
    values: Values | None = None,
    note: Callable[[str], None] = print,
) -> bool:
    """Start the waiting trials ``claimed`` (none: the sampler's next trial) and train them as one group.

    Called with the study's lock held and signals held back, like a single trial: the
    trials are started before the lock is released, and each is closed with signals held.
    A trial still open when the run is interrupted or fails is closed as FAIL, and its
    point queued again when interrupted. A trial that another worker closed meanwhile (this
    one was stopped past its heartbeat, and its points were queued again) ends the group
    here with one line through ``note``: that work is dropped, not an error. Returns False
    when a trial failed. With ``values``, a trial is told the objectives it gives from its
    accuracy and result (a multi-objective study).
    """
    with warnings.catch_warnings():  # Optuna's hint to use optimize(): the heartbeats are recorded below
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        started = time.perf_counter()
        trials = take(study, claimed)
        seconds = time.perf_counter() - started
    # points: the trials that are enqueued points, queued again and resumed when interrupted (a
    # sampler's trial is not: nothing asks for its point again)
    points = {t.number for t in trials if fixed_params(study, t) is not None}
    for trial in trials:  # its parameters now: a trial closed before training still shows its point
        if trial.number not in points:  # a sampler's proposal: its decision time
            trial.set_user_attr(records.ASK_SECONDS, round(seconds, 4))
        objective.configs(trial)
    if len(trials) > 1:
        for trial in trials:  # which trials' training time is one and the same
            trial.set_user_attr(records.SHARED_RUN_ATTR, trials[0].number)
    open_trials = {t.number: t for t in trials}
    ok = True

    def done(trial: optuna.Trial, result: TrialResult) -> None:
        nonlocal ok
        interrupts.hold()
        try:
            check_result(trial, objective.configs(trial), result)
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

    with Heartbeats(study, [t._trial_id for t in trials], note) as heartbeats:
        release_lock()
        try:
            try:
                interrupts.release()  # raises an interrupt held back since the claim
                objective.run_group(trials, done, resumable=len(points) == len(trials))
            finally:
                interrupts.hold()
        except optuna.exceptions.UpdateFinishedTrialError:
            _drop_taken(study, list(open_trials.values()), requeue, note)
            return ok
        except TrialFailed as e:
            ok = False
            for trial in list(open_trials.values()):
                with _unless_taken():
                    trial.set_user_attr(records.FAIL_REASON, str(e))
                    report(study.tell(trial, state=TrialState.FAIL))
        except BaseException as e:
            interrupted = [t for t in open_trials.values() if isinstance(e, KeyboardInterrupt)]
            for trial in interrupted:
                with _unless_taken():
                    trial.set_user_attr(records.FAIL_REASON, records.INTERRUPTED)
                    if trial.number in points:
                        note_interrupted(trial)
            if interrupted:
                requeue(study, interrupted)
            for trial in [t for t in open_trials.values() if t not in interrupted]:
                with _unless_taken():
                    trial.set_user_attr(records.FAIL_REASON, f"{type(e).__name__}: {e}")
                    study.tell(trial, state=TrialState.FAIL)
            raise
    return ok


@contextlib.contextmanager
def _unless_taken() -> Iterator[None]:
    """Skip the writes to a trial that another worker closed (this one was stopped past its heartbeat)."""
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        yield


def _drop_taken(study: optuna.Study, trials: list[optuna.Trial], requeue: Requeue, note: Callable[[str], None]) -> None:
    """Another worker closed some of ``trials`` while this one was stopped: drop them, queue the rest again."""
    storage = study._storage
    taken = [t for t in trials if storage.get_trial(t._trial_id).state.is_finished()]
    rest = [t for t in trials if t not in taken]
    for trial in rest:  # not their point's fault: they run again, from the group's checkpoint
        with _unless_taken():
            trial.set_user_attr(records.FAIL_REASON, f"{records.INTERRUPTED}: its group was taken over")
    if rest:
        requeue(study, rest)
    numbers = ", ".join(str(t.number) for t in taken)
    note(
        f"trial(s) {numbers} were closed by another worker while this one was stopped past its heartbeat "
        "(their points were queued again there): dropped that work and went on"
    )
