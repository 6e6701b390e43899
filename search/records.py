"""What a finished trial holds, read and written in one place.

A trial trains one point under K training seeds (``seed, seed + 1, ...``). Its value is
the mean of the seeds' last validation accuracies. What it stores:

- user attrs ``seeds`` (the K seeds), ``seed_values`` (each seed's last validation
  accuracy, in seed order), ``seed_test_accuracies``, ``test_accuracy`` and
  ``val_accuracy`` (means over the seeds), ``train_seconds``, ``parameter_count``,
  ``device``: short values that the dashboard's trial page shows.
- system attr ``histories``: each seed's per-epoch history (a list of K lists of
  ``EpochRecord.to_dict()``). It is kept out of the user attrs because the dashboard
  shows each user attr on one line, and a long history made the trial page thousands
  of pixels wide. The trial's note shows the history as a table.

Trials stored before seeds existed kept one ``history`` user attr; they read as K=1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

HISTORIES_ATTR = "histories"

History = list[dict[str, float]]


def write_histories(trial: optuna.Trial, histories: Sequence[History]) -> None:
    """Store each seed's history in ``trial`` (a live trial of a study on any storage)."""
    # Trial.set_system_attr was removed from Optuna's public API; the storage's method is public.
    trial.study._storage.set_trial_system_attr(trial._trial_id, HISTORIES_ATTR, [list(h) for h in histories])


def histories(trial: optuna.trial.FrozenTrial) -> list[History]:
    """Each seed's per-epoch history; an empty list when the trial stored none."""
    if HISTORIES_ATTR in trial.system_attrs:
        return [list(h) for h in trial.system_attrs[HISTORIES_ATTR]]
    old = trial.user_attrs.get("history")
    return [list(old)] if old else []


def mean_history(trial: optuna.trial.FrozenTrial) -> History:
    """The per-epoch mean over the seeds, over the epochs that every seed reached."""
    runs = histories(trial)
    if not runs:
        return []
    length = min(len(h) for h in runs)
    return [
        {key: sum(h[e][key] for h in runs) / len(runs) for key in runs[0][e]}
        for e in range(length)
    ]


def epochs_run(trial: optuna.trial.FrozenTrial) -> int:
    """How many epochs the trial trained (the longest of its seeds)."""
    runs = histories(trial)
    return max((len(h) for h in runs), default=0)


def seed_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Each seed's validation accuracy; ``[value]`` for a one-seed trial stored before seeds."""
    values = trial.user_attrs.get("seed_values")
    if values is not None:
        return [float(v) for v in values]
    return [float(trial.value)] if trial.value is not None else []


def test_accuracy(trial: optuna.trial.FrozenTrial) -> float | None:
    """The mean test accuracy over the seeds, or None."""
    value: Any = trial.user_attrs.get("test_accuracy")
    return float(value) if value is not None else None
