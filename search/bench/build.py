"""Fill a table: train every grid point (in the grid study's shared runs), or read a finished grid study."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna

from search import records
from search.bench.table import FIDELITY, METRICS, Table, TableError, environment
from search.space import SEVEN, Parameter, search_space
from trainer import Splits, TrainConfig
from trainer.loop import run_key, train_together

# Gets (runs done, runs in all) after each shared run.
Progress = Callable[[int, int], None]


def grid_values(space: Sequence[Parameter] = SEVEN) -> tuple[dict[str, tuple[Any, ...]], tuple[int, ...]]:
    """The grid's values of each parameter but the fidelity, and the fidelity's values."""
    values = {p.name: tuple(p.grid) for p in space if p.name != FIDELITY}
    fidelities = next(tuple(p.grid) for p in space if p.name == FIDELITY)
    return values, fidelities


def build_by_training(
    values: dict[str, tuple[Any, ...]],
    fidelities: tuple[int, ...],
    seeds: Sequence[int],
    splits: Splits,
    data: dict[str, Any],
    progress: Progress | None = None,
    rows: Sequence[int] | None = None,
) -> Table:
    """Train every point under every seed for ``max(fidelities)`` epochs and return the table.

    The (point, seed) configurations are partitioned by ``trainer.loop.run_key``, and each
    part is one ``train_together`` run, as in the grid study, so a table holds exactly the
    histories that the grid study's trials get. ``rows`` trains only those points (the
    others stay NaN): for tests that look up only a few points.
    """
    device = str(splits.train_x.device)
    table = _empty(values, fidelities, seeds, {"data": data, **environment(device)})
    configs = {
        (p, s): TrainConfig(**point, epochs=max(fidelities), seed=seed, device=device)
        for p, point in enumerate(table.points())
        if rows is None or p in rows
        for s, seed in enumerate(seeds)
    }
    runs: dict[TrainConfig, list[tuple[int, int]]] = {}
    for where, config in configs.items():
        runs.setdefault(run_key(config), []).append(where)
    for done, members in enumerate(runs.values(), start=1):
        # train_together returns the results in the order of the configurations given.
        results = train_together([configs[where] for where in members], splits)
        for (p, s), result in zip(members, results, strict=True):
            _fill(table.curves[p, s], [r.to_dict() for r in result.history])
        if progress is not None:
            progress(done, len(runs))
    return table


def build_from_study(study: optuna.Study) -> Table:
    """The table of a finished grid study, read through ``search.records``.

    Each point's curve comes from its trial with the most epochs; its histories (one per
    seed) must reach that many epochs unless the run diverged. Only a point's own results
    are read: COMPLETE and PRUNED trials and runs that diverged; an interrupted trial (run
    again under another number) or one that failed for another reason is not. A point
    missing from the study, or cut short (pruned), is a ``TableError``.
    """
    _check_grid_study(study)
    trials = [t for t in study.get_trials(deepcopy=False) if _result_of_its_point(t) and t.params]
    if not trials:
        raise TableError(f"study {study.study_name!r} has no finished trials")
    space = {p.name: p.grid for p in SEVEN}
    values = {
        name: tuple(v for v in space[name] if any(t.params.get(name) == v for t in trials))
        for name in trials[0].params
        if name != FIDELITY
    }
    fidelities = tuple(sorted({int(t.params[FIDELITY]) for t in trials}))
    longest: dict[tuple[Any, ...], optuna.trial.FrozenTrial] = {}
    for t in trials:
        key = tuple(t.params[name] for name in values)
        if key not in longest or t.params[FIDELITY] > longest[key].params[FIDELITY]:
            longest[key] = t
    grid = search_space(bool(study.user_attrs.get("regularization")), study.user_attrs.get("max_epochs"))
    epochs = tuple(sorted(int(v) for p in grid if p.name == FIDELITY for v in p.grid))
    if fidelities != epochs:
        raise TableError(
            f"study {study.study_name!r} ran epochs {list(fidelities)} of its grid's {list(epochs)}: "
            "a table needs every point at every epochs value"
        )
    have = {(*(t.params[name] for name in values), int(t.params[FIDELITY])) for t in trials}
    wanted = int(np.prod([len(v) for v in values.values()])) * len(fidelities)
    if len(have) != wanted:
        raise TableError(
            f"study {study.study_name!r} holds {len(have)} of the {wanted} points of the product of its values "
            "and epochs: a table needs every one (run the grid further, or with --trials covering whole groups)"
        )
    seeds = tuple(trials[0].user_attrs.get("seeds") or [study.user_attrs.get("seed", 1)])
    devices = ",".join(sorted({str(t.user_attrs.get("device", "unknown")) for t in trials}))
    info = {"data": {"study": study.study_name}, **environment(devices)}
    table = _empty(values, fidelities, seeds, info)
    for p, point in enumerate(table.points()):
        trial = longest.get(tuple(point.values()))
        if trial is None:
            raise TableError(f"study {study.study_name!r} has no trial for the point {point}")
        histories = records.histories(trial)
        if len(histories) != len(seeds):
            raise TableError(f"trial {trial.number} has {len(histories)} seeds' histories, expected {len(seeds)}")
        for s, history in enumerate(histories):
            diverged = records.is_diverged(trial)
            if len(history) < trial.params[FIDELITY] and not diverged:
                raise TableError(f"trial {trial.number} stopped after {len(history)} epochs (pruned)")
            _fill(table.curves[p, s], history)
    return table


def _result_of_its_point(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial whose histories are its point's: finished, or failed because its own run diverged."""
    return records.is_finished(trial.state) or (trial.state.is_finished() and records.is_diverged(trial))


def _check_grid_study(study: optuna.Study) -> None:
    """A table is read from a grid study of one maximized objective: anything else is a ``TableError``."""
    if len(study.directions) != 1:
        raise TableError(f"study {study.study_name!r} has {len(study.directions)} objectives: a table holds one")
    kind = study.user_attrs.get("kind")
    if kind != "grid":
        raise TableError(
            f"study {study.study_name!r} is {f'a {kind!r} study, not a' if kind else 'not a'} grid study: "
            "a table is read from the points of a grid study"
        )


def _empty(
    values: dict[str, tuple[Any, ...]], fidelities: tuple[int, ...], seeds: Sequence[int], info: dict[str, Any]
) -> Table:
    n_points = int(np.prod([len(v) for v in values.values()]))
    # NaN until filled: epochs after a divergence stay NaN.
    curves = np.full((n_points, len(seeds), max(fidelities), len(METRICS)), np.nan, dtype=np.float32)
    return Table(values=values, fidelities=fidelities, seeds=tuple(seeds), curves=curves, info=info)


def _fill(rows: np.ndarray, history: list[dict[str, float]]) -> None:
    for e, record in enumerate(history):
        rows[e] = [record[m] for m in METRICS]
