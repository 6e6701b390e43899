"""What a study holds, gathered cheaply for the study note, the report and ``best``/``list``/``export``."""

from __future__ import annotations

import csv
from typing import Any, NamedTuple, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import records


class StudySummary(NamedTuple):
    """A study's trial counts by state, best trial and time (which choices matter: ``effects``)."""

    name: str
    kind: str
    outcomes: records.Outcomes
    best: FrozenTrial | None
    train_seconds: float
    wall_seconds: float


def summarize(study: optuna.Study) -> StudySummary:
    """Counts by state, the best complete trial, training and wall time: cheap, for every command."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=records.accuracy) if complete else None  # type: ignore[arg-type, return-value]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    return StudySummary(
        name=study.study_name,
        kind=str(study.user_attrs.get("kind", "?")),
        outcomes=records.outcomes(trials),
        best=best,
        train_seconds=_training_seconds(trials),
        wall_seconds=wall,
    )


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete and pruned trials that recorded at least one epoch."""
    return [t for t in study.get_trials(deepcopy=False, states=records.FINISHED_STATES) if records.histories(t)]


def oat_baseline(study: optuna.Study) -> dict[str, Any] | None:
    """The baseline point of a one-at-a-time study (its first point), else None."""
    if study.user_attrs.get("kind") != "oat":
        return None
    for t in study.get_trials(deepcopy=False):
        if records.point(t) == 0:
            return records.fixed_params(t) or t.params
    return None


def write_csv(study: optuna.Study, out: TextIO) -> int:
    """One row per trial: number, state, value, parameters, test accuracy, seconds, epochs. Returns the rows."""
    trials = study.get_trials(deepcopy=False)
    params = sorted({k for t in trials for k in t.params})
    # A multi-objective study's other objectives, by their names in the study (val_accuracy is the first).
    others = study.metric_names[1:] if len(study.directions) > 1 and study.metric_names else []
    others = [f"objective_{name.replace(' ', '_')}" for name in others]
    writer = csv.writer(out)
    writer.writerow(
        [
            "number",
            "state",
            "val_accuracy",
            "test_accuracy",
            "train_seconds",
            "epochs_run",
            "parameter_count",
            *others,
            *params,
            records.FAIL_REASON,
        ]
    )
    for t in trials:
        writer.writerow(
            [
                t.number,
                t.state.name,
                records.accuracy(t),
                records.test_accuracy(t),
                t.user_attrs.get("train_seconds"),
                records.epochs_run(t),
                t.user_attrs.get("parameter_count"),
                *(t.values[1:] if t.values else [None] * len(others)),
                *[t.params.get(k) for k in params],
                records.fail_reason(t),
            ]
        )
    return len(trials)


def _training_seconds(trials: list[FrozenTrial]) -> float:
    """The trials' training time: their shares summed; a shared run of trials stored before shares
    (no ``group_seconds``, each holding the run's time) counted once."""
    shares, runs = 0.0, {}
    for t in trials:
        seconds = t.user_attrs.get("train_seconds", 0.0)
        if records.GROUP_SECONDS in t.user_attrs:
            shares += seconds
            continue
        run = t.user_attrs.get(records.SHARED_RUN_ATTR, ("alone", t.number))
        runs[run] = max(runs.get(run, 0.0), seconds)
    return shares + sum(runs.values())
