"""What a study found, gathered once for the study note, the report and ``best``/``list``/``export``."""

from __future__ import annotations

import csv
import warnings
from typing import Any, NamedTuple, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.analysis.text import best_line, format_counts, format_value, state_counts
from search.shared import SHARED_RUN_ATTR


class Effect(NamedTuple):
    """One-at-a-time: a parameter moved alone to ``value`` and what that did to the objective."""

    param: str
    value: Any
    val_accuracy: float
    test_accuracy: float | None
    delta: float  # against the baseline's validation accuracy


class StudySummary(NamedTuple):
    name: str
    kind: str
    states: dict[str, int]
    best: FrozenTrial | None
    importances: dict[str, float]
    train_seconds: float
    wall_seconds: float
    effects: list[Effect]


def summarize(study: optuna.Study) -> StudySummary:
    trials = study.get_trials(deepcopy=False)
    states = state_counts(trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None  # type: ignore[arg-type, return-value]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    return StudySummary(
        name=study.study_name,
        kind=str(study.user_attrs.get("kind", "?")),
        states=states,
        best=best,
        importances=_importances(study, complete),
        train_seconds=_training_seconds(trials),
        wall_seconds=wall,
        effects=oat_effects(study, complete),
    )


def _importances(study: optuna.Study, complete: list[FrozenTrial]) -> dict[str, float]:
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}  # e.g. every trial has the same parameters


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete and pruned trials that recorded at least one epoch."""
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return [t for t in study.get_trials(deepcopy=False, states=states) if records.histories(t)]


def oat_baseline(study: optuna.Study) -> dict[str, Any] | None:
    """The baseline point of a one-at-a-time study (its first point), else None."""
    if study.user_attrs.get("kind") != "oat":
        return None
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("point") == 0:
            return t.system_attrs.get("fixed_params") or t.params
    return None


def oat_effects(study: optuna.Study, complete: list[FrozenTrial]) -> list[Effect]:
    """Each parameter's other values against the baseline run, parameter by parameter in the
    space's order, each parameter's values in the order they were enqueued."""
    baseline = oat_baseline(study)
    if baseline is None:
        return []
    base = next((t for t in complete if t.params == baseline), None)
    if base is None:
        return []
    effects = []
    for t in sorted(complete, key=lambda t: t.user_attrs.get("point", t.number)):
        changed = [k for k, v in t.params.items() if baseline.get(k) != v]
        if len(changed) == 1:
            k = changed[0]
            effects.append(Effect(k, t.params[k], t.value, records.test_accuracy(t), t.value - base.value))  # type: ignore[operator, arg-type]
    names = list(baseline)
    return sorted(effects, key=lambda e: names.index(e.param))


def study_note(s: StudySummary) -> str:
    """The study's markdown note for optuna-dashboard."""
    lines = [f"## {s.name} ({s.kind})", "", f"Trials: {format_counts(s.states)}.", ""]
    if s.best is not None:
        lines += [
            f"**Best: {best_line(s.best)}.**",
            "",
            "| parameter | best value |",
            "|---|---|",
            *[f"| {k} | {format_value(v)} |" for k, v in s.best.params.items()],
            "",
        ]
    if s.effects:
        lines += [
            "### One parameter at a time (against the baseline)",
            "",
            "| parameter | value | validation accuracy | change |",
            "|---|---|---:|---:|",
        ]
        lines += [f"| {e.param} | {e.value} | {e.val_accuracy:.4f} | {e.delta:+.4f} |" for e in s.effects]
        lines.append("")
    if s.importances:
        lines += ["### Parameter importances (fANOVA)", "", "| parameter | importance |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in s.importances.items()]
        lines.append("")
    lines.append(f"Time: {s.train_seconds:.0f} s of training, {s.wall_seconds:.0f} s from first start to last end.")
    return "\n".join(lines)


def write_csv(study: optuna.Study, out: TextIO) -> int:
    """One row per trial: number, state, value, parameters, test accuracy, seconds, epochs. Returns the rows."""
    trials = study.get_trials(deepcopy=False)
    params = sorted({k for t in trials for k in t.params})
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
            *params,
            "fail_reason",
        ]
    )
    for t in trials:
        writer.writerow(
            [
                t.number,
                t.state.name,
                t.value,
                records.test_accuracy(t),
                t.user_attrs.get("train_seconds"),
                records.epochs_run(t),
                t.user_attrs.get("parameter_count"),
                *[t.params.get(k) for k in params],
                t.user_attrs.get("fail_reason", ""),
            ]
        )
    return len(trials)


def _training_seconds(trials: list[FrozenTrial]) -> float:
    """The trials' training time, a shared run's counted once (its longest trial spans it)."""
    runs: dict[object, float] = {}
    for t in trials:
        run = t.user_attrs.get(SHARED_RUN_ATTR, ("alone", t.number))
        runs[run] = max(runs.get(run, 0.0), t.user_attrs.get("train_seconds", 0.0))
    return sum(runs.values())
