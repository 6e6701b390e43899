"""What a finished trial holds, read and written in one place.

A trial trains one point under K training seeds (``seed, seed + 1, ...``). Its value is
the mean of the seeds' last validation accuracies. What it stores:

- user attrs ``seeds`` (the K seeds), ``seed_values`` (each seed's last validation
  accuracy, in seed order), ``seed_test_accuracies``, ``test_accuracy`` and
  ``val_accuracy`` (means over the seeds), ``train_seconds``, ``network_seconds``,
  ``parameter_count``, ``device``: short values that the dashboard's trial page shows.
- system attr ``histories``: each seed's per-epoch history (a list of K lists of
  ``EpochRecord.to_dict()``). It is kept out of the user attrs because the dashboard
  shows each user attr on one line, and a long history made the trial page thousands
  of pixels wide. The trial's note shows the history as a table.

Trials stored before seeds existed kept one ``history`` user attr; they read as K=1.

Beside the results, the run path writes (and every reader reads, through this module):
``fail_reason`` (why a trial failed; ``interrupted...`` when not its point's fault), ``point``
(a grid or oat point's index), ``retry_of`` (the trial a re-queued point runs again),
``shared_run`` (the first trial of the group whose run a trial shared), ``group_seconds`` (that
run's wall time; ``train_seconds`` is the trial's share of it) and ``model_artifact_id``;
Optuna keeps an enqueued point's parameters in the system attr ``fixed_params``.

Two times, for two questions. ``train_seconds`` is the trial's share of its run, split with
every configuration trained beside it: the shares add up to a study's training time.
``network_seconds`` is its cost as if trained alone, measured per network: its seeds'
networks' share of each moment while it trained, not split with the configurations that
share a network (points at 5, 14 and 25 epochs, nll and cross-entropy). A grouped trial's
share is a fraction of what it would cost alone, so costs compare by ``network_seconds``
(``cost_seconds``): the seconds front, an oat move's change in seconds, the seconds objective.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from trainer.objective import TrialResult

HISTORIES_ATTR = "histories"
RETRY_OF_ATTR = "retry_of"  # user attr of a re-queued point: the number of the trial it runs again
FAIL_REASON = "fail_reason"  # user attr: why a trial failed
INTERRUPTED = "interrupted"  # fail_reason (or its prefix) of a trial closed without its point's fault
DIVERGED = "diverged"  # fail_reason prefix of a run whose loss became NaN or infinite
POINT = "point"  # user attr: the index of a grid or oat point in the study's order
SHARED_RUN_ATTR = "shared_run"  # user attr: the first trial number of the group a trial shared
GROUP_SECONDS = "group_seconds"  # user attr: the wall time of the group's run until the trial was done
NETWORK_SECONDS = "network_seconds"  # user attr: its cost as if trained alone, measured per network
MODEL_ARTIFACT = "model_artifact_id"  # user attr: the artifact id of the trial's model file
ASK_SECONDS = "ask_seconds"  # user attr of a sampler's trial: how long the sampler took to propose it
STUDY_TOKEN = "token"  # study user attr: random, written once at creation (whose checkpoints these are)
FIXED_PARAMS = "fixed_params"  # Optuna's system attr holding an enqueued trial's parameters
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts against a study's budget
TRAINER_FLAGS = {
    "hidden_layers": "--hidden-layers",
    "hidden_units": "--hidden-units",
    "activation": "--activation",
    "loss": "--loss",
    "learning_rate": "--lr",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "optimizer": "--optimizer",
    "dropout": "--dropout",
    "weight_decay": "--weight-decay",
    "l1": "--l1",
}
DATA_FLAGS = {"limit_train": "--limit-train", "validation": "--validation", "limit_test": "--limit-test"}

History = list[dict[str, float]]


def write_histories(trial: optuna.Trial, histories: Sequence[History]) -> None:
    """Store each seed's history in ``trial`` (a live trial of a study on any storage)."""
    # Trial.set_system_attr was removed from Optuna's public API; the storage's method is public.
    trial.study._storage.set_trial_system_attr(trial._trial_id, HISTORIES_ATTR, [list(h) for h in histories])


def write_results(trial: optuna.Trial, result: TrialResult) -> None:
    """Store what ``trial``'s seeds produced: the user attrs above and each seed's history."""
    runs = result.runs
    trial.set_user_attr("seeds", result.seeds)
    # A seed that diverged in its first epoch has no accuracy: None, as JSON has no NaN.
    trial.set_user_attr("seed_values", [r.val_accuracy if r.history else None for r in runs])
    trial.set_user_attr("seed_test_accuracies", [r.test_accuracy if r.history else None for r in runs])
    trial.set_user_attr("train_seconds", round(result.seconds, 3))  # its share: they add up over a study
    trial.set_user_attr(GROUP_SECONDS, round(result.group_seconds, 3))
    trial.set_user_attr(NETWORK_SECONDS, round(result.network_seconds, 3))
    trial.set_user_attr("parameter_count", result.parameter_count)
    trial.set_user_attr("device", result.device)
    if result.complete:
        trial.set_user_attr("test_accuracy", result.test_accuracy)
        trial.set_user_attr("val_accuracy", result.value)
    write_histories(trial, [[r.to_dict() for r in run.history] for run in runs])


def histories(trial: optuna.trial.FrozenTrial) -> list[History]:
    """Each seed's per-epoch history; an empty list when the trial stored none."""
    if HISTORIES_ATTR in trial.system_attrs:
        return [list(h) for h in trial.system_attrs[HISTORIES_ATTR]]
    old = trial.user_attrs.get("history")
    return [list(old)] if old else []


def mean_history(trial: optuna.trial.FrozenTrial) -> History:
    """The per-epoch mean over the seeds, over the epochs that every seed reached."""
    return mean_of(histories(trial))


def mean_of(runs: Sequence[History]) -> History:
    """The per-epoch mean of several histories, over the epochs that every one reached."""
    if not runs:
        return []
    length = min(len(h) for h in runs)
    keys = list(runs[0][0]) if length else []
    # (runs, epochs, keys) -> the mean over runs
    means = np.mean([[[h[e][k] for k in keys] for e in range(length)] for h in runs], axis=0)
    return [{k: int(v) if k == "epoch" else float(v) for k, v in zip(keys, row, strict=True)} for row in means]


def epochs_run(trial: optuna.trial.FrozenTrial) -> int:
    """How many epochs the trial trained (the longest of its seeds)."""
    runs = histories(trial)
    return max((len(h) for h in runs), default=0)


def seed_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Each seed's validation accuracy (NaN for a seed that diverged in its first epoch);
    ``[value]`` for a one-seed trial stored before seeds."""
    values = trial.user_attrs.get("seed_values")
    if values is not None:
        return [float(v) if v is not None else float("nan") for v in values]
    return [float(trial.value)] if trial.value is not None else []


def trainer_command(trial: FrozenTrial, study_attrs: Mapping[str, Any]) -> str:
    """The ``python -m trainer`` command that trains ``trial``'s point under its seeds, on its study's
    data sizes (``study_attrs``), at one thread: on the same kind of CPU, its numbers to the last bit."""
    args = ["python", "-m", "trainer"]
    for name, value in trial.params.items():
        if name in TRAINER_FLAGS:
            args += [TRAINER_FLAGS[name], str(value)]
    seeds = trial.user_attrs.get("seeds") or [1]
    args += ["--seed", str(seeds[0])] + (["--seeds", str(len(seeds))] if len(seeds) > 1 else [])
    for name, flag in DATA_FLAGS.items():
        if study_attrs.get(name) is not None:
            args += [flag, str(study_attrs[name])]
    if trial.user_attrs.get("device"):  # where it trained: on a machine with a GPU, auto would take it
        args += ["--device", str(trial.user_attrs["device"])]
    return shlex.join([*args, "--threads", "1"])


def cost_seconds(trial: FrozenTrial) -> float | None:
    """What the trial costs in seconds as if trained alone (``network_seconds``), comparable across
    trials trained together or apart; None for a grouped trial stored before it was kept, whose
    share is not (a trial that trained alone, in no group, holds its whole time)."""
    value = trial.user_attrs.get(NETWORK_SECONDS)
    if value is None and SHARED_RUN_ATTR not in trial.user_attrs:
        value = trial.user_attrs.get("train_seconds")
    return float(value) if value is not None else None


def test_accuracy(trial: optuna.trial.FrozenTrial) -> float | None:
    """The mean test accuracy over the seeds, or None."""
    value: Any = trial.user_attrs.get("test_accuracy")
    return float(value) if value is not None else None


@dataclass(frozen=True)
class Outcomes:
    """A study's trials by what became of them; an interrupted trial is not a failure.

    ``requeued``: closed as FAIL when interrupted or when its worker died, and run again
    (a grid or oat point queued again, a trial retried after its heartbeat stopped).
    ``interrupted``: stopped by a signal and not queued again (a sampler's trial: the
    sampler proposes another). ``failed``: every other FAIL (diverged, out of memory...).
    """

    complete: int = 0
    pruned: int = 0
    running: int = 0
    waiting: int = 0
    requeued: int = 0
    interrupted: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    def describe(self, by_state: bool = False) -> str:
        """``18 finished, 24 interrupted and re-queued, 0 failed``: counts of none left out, but failures.

        ``by_state`` splits the finished into ``complete`` and ``pruned``.
        """
        if not any(astuple(self)):
            return "no trials"
        if by_state:
            parts = [f"{self.complete} complete"] + ([f"{self.pruned} pruned"] if self.pruned else [])
        else:
            parts = [f"{self.finished} finished" + (f" ({self.pruned} pruned)" if self.pruned else "")]
        for count, text in (
            (self.running, "running"),
            (self.waiting, "waiting"),
            (self.requeued, "interrupted and re-queued"),
            (self.interrupted, "interrupted"),
        ):
            if count:
                parts.append(f"{count} {text}")
        return ", ".join([*parts, f"{self.failed} failed"])


def is_finished(state: TrialState | str) -> bool:
    """A trial that counts against the budget: COMPLETE or PRUNED (a state, or its name)."""
    return (state.name if isinstance(state, TrialState) else state) in {s.name for s in FINISHED_STATES}


def fail_reason(trial: FrozenTrial) -> str:
    """Why the trial failed ('' when it says nothing)."""
    return str(trial.user_attrs.get(FAIL_REASON, "") or "")


def is_diverged(trial: FrozenTrial) -> bool:
    """A failed run whose loss became NaN or infinite (what the analyses count as a point's failure)."""
    return fail_reason(trial).startswith(DIVERGED)


def is_interrupted(trial: FrozenTrial) -> bool:
    """Closed without its point's fault: a signal, a failing storage."""
    return fail_reason(trial).startswith(INTERRUPTED)


def fixed_params(trial: FrozenTrial) -> dict[str, Any] | None:
    """An enqueued trial's point (grid, oat), or None for a sampler's trial."""
    return trial.system_attrs.get(FIXED_PARAMS)


def point(trial: FrozenTrial) -> int | None:
    """The index of the trial's grid or oat point, or None."""
    value = trial.user_attrs.get(POINT)
    return int(value) if value is not None else None


def accuracy(trial: FrozenTrial) -> float | None:
    """The trial's validation accuracy: its value, or its first objective in a multi-objective study."""
    return trial.values[0] if trial.values else None


def accuracy_study(study: optuna.Study) -> optuna.Study:
    """``study`` read by its validation accuracy alone: itself when it has one objective, else an
    in-memory copy whose trials' value is their first objective (the accuracy, maximized).

    The analyses (effects, figures, summaries) read one value per trial; this lets them read a
    study of accuracy against cost too, leaving the study itself untouched.
    """
    if len(study.directions) == 1:
        return study
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory" is not news here
    try:
        view = optuna.create_study(study_name=study.study_name, direction=study.directions[0].name.lower())
    finally:
        optuna.logging.set_verbosity(verbosity)
    for key, value in study.user_attrs.items():
        view.set_user_attr(key, value)
    for t in study.get_trials(deepcopy=False):
        view.add_trial(
            FrozenTrial(
                number=t.number,
                state=t.state,
                value=None,
                values=[t.values[0]] if t.values else None,
                datetime_start=t.datetime_start,
                datetime_complete=t.datetime_complete,
                params=t.params,
                distributions=t.distributions,
                user_attrs=t.user_attrs,
                system_attrs=t.system_attrs,
                intermediate_values=t.intermediate_values,
                trial_id=t._trial_id,
            )
        )
    return view


def outcomes(trials: Sequence[optuna.trial.FrozenTrial]) -> Outcomes:
    """Count ``trials`` (all of one study) by outcome."""
    retried: set[int] = set()
    for t in trials:
        if RETRY_OF_ATTR in t.user_attrs:
            retried.add(t.user_attrs[RETRY_OF_ATTR])
        retried.update(t.system_attrs.get("retry_history", ()))  # Optuna's RetryFailedTrialCallback
    counts = dict.fromkeys(("complete", "pruned", "running", "waiting", "requeued", "interrupted", "failed"), 0)
    for t in trials:
        if t.state == optuna.trial.TrialState.FAIL:
            key = "requeued" if t.number in retried else "failed"
            if key == "failed" and is_interrupted(t):
                key = "interrupted"
        else:
            key = t.state.name.lower()
        counts[key] += 1
    return Outcomes(**counts)
