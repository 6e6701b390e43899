"""Replays: the same trials as a live study, best-so-far curves that behave, workers in simulated time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest

from search import app
from search.bench.build import build_by_training, grid_values
from search.bench.fronts import hypervolume, summarize_fronts
from search.bench.problem import TableProblem
from search.bench.replay import ReplayError, replay, replay_one
from search.bench.summary import best_so_far, pairs, picked_test, summarize
from search.bench.table import Table
from search.spec import StudySpec
from tests.search.bench.conftest import random_table
from tests.search.conftest import FAST
from trainer import load_mnist, split


def live_and_table(spec: StudySpec) -> tuple[list[optuna.trial.FrozenTrial], Table]:
    """The live study's trials, and a table (seed 3) built on the same data for the points they visited."""
    assert app.run_study(spec, []) == 0
    live = sorted(optuna.load_study(study_name=spec.name, storage=spec.storage).trials, key=lambda t: t.number)
    values, fidelities = grid_values()
    empty = Table(values, fidelities, (3,), np.zeros((3**6, 1, 25, 7), np.float32))
    splits = split(load_mnist(spec.data_dir, "cpu", False), FAST["validation"], 100, FAST["limit_test"])
    # Only the points the live study visited are trained; a replay that strays meets NaN and fails.
    return live, build_by_training(values, fidelities, [3], splits, {}, rows={empty.index(t.params) for t in live})


@pytest.mark.parametrize(("kind", "trials"), [("tpe", 8), ("random", 6)])
def test_replay_makes_the_trials_of_a_live_study_with_the_same_seed(
    make_spec: Callable[..., StudySpec], kind: str, trials: int
) -> None:
    # The median pruner acts after 5 trials: pruning must agree too.
    live, table = live_and_table(make_spec(kind, seed=3, trials=trials, grid_space=True, limit_train=100))
    run = replay_one(table, kind, seed=3, trials=trials, pruner="median")

    assert [t.params for t in run.trials] == [t.params for t in live]
    assert [t.state for t in run.trials] == [t.state.name for t in live]
    assert [t.value for t in run.trials] == [t.value if t.state.name == "COMPLETE" else None for t in live]
    assert {t.state.name for t in live} >= {"COMPLETE"}


@pytest.mark.parametrize("kind", ["tpe", "nsga2"])
def test_a_multi_objective_replay_makes_the_trials_of_the_live_study(
    make_spec: Callable[..., StudySpec], kind: str
) -> None:
    objectives = ("accuracy", "parameters")
    live, table = live_and_table(
        make_spec(kind, seed=3, trials=6, grid_space=True, limit_train=100, objectives=objectives)
    )
    run = replay_one(table, kind, seed=3, trials=6, objectives=objectives)

    assert [t.params for t in run.trials] == [t.params for t in live]
    assert [[t.value, t.cost] for t in run.trials] == [t.values for t in live]


def test_hypervolume_of_a_known_staircase() -> None:
    # Two points, (0.9, 10) and (0.95, 30), reference cost 100: 0.9 * 90 + 0.05 * 70.
    assert hypervolume(np.array([0.9, 0.95, 0.8]), np.array([10.0, 30.0, 50.0]), 100.0) == pytest.approx(84.5)
    assert hypervolume(np.array([]), np.array([]), 1.0) == 0.0


def test_a_multi_objective_replay_scores_each_sampler_by_the_true_fronts_share(table_file: Path) -> None:
    table = random_table()
    runs = replay(str(table_file), ["random", "nsga2"], trials=12, repeats=3, objectives=("accuracy", "parameters"))
    summary = summarize_fronts(runs, TableProblem(table), "parameters", 12)
    for scores in summary["samplers"].values():
        assert all(0 <= m <= 1 + 1e-9 for m in scores["hypervolume_share_mean"])
    assert set(summary["paired"]) == {"nsga2-random"}
    with pytest.raises(ReplayError, match="cannot prune"):
        replay_one(table, "random", seed=1, trials=3, pruner="median", objectives=("accuracy", "parameters"))


@pytest.mark.parametrize("sampler", ["grid", "shuffled", "random", "tpe", "gp"])
def test_best_so_far_never_falls_and_never_passes_the_tables_best(sampler: str) -> None:
    table = random_table()
    run = replay_one(table, sampler, seed=5, trials=25, workers=3, pruner="median")
    curve = best_so_far(run)
    assert len(curve) == 25 == len(run.finished())
    assert np.all(np.diff(curve) >= 0) and curve[-1] <= table.best() + 1e-12
    assert all(set(t.params) == set(TableProblem(table).search_space) for t in run.trials)


def test_simulated_workers_finish_in_time_order_and_run_at_most_w_at_once() -> None:
    table = random_table()
    run = replay_one(table, "random", seed=1, trials=30, workers=4, pruner="median")
    ends = [t.end for t in run.trials]
    assert ends == sorted(ends)
    problem = TableProblem(table)
    for t in run.trials:  # a trial lasts its recorded epochs' seconds
        assert t.end - t.begin <= problem.curve(t.params)[1].sum() + 1e-6
    for now in ends:
        assert sum(t.begin <= now < t.end for t in run.trials) <= 4


def test_a_diverged_point_fails_its_trial_and_does_not_count() -> None:
    table = random_table()
    problem = TableProblem(table)
    diverged = {**table.points()[3], "epochs": 25}
    assert np.isnan(problem.evaluate(diverged))
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(diverged)
    study.optimize(problem, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


def test_the_problem_runs_any_sampler_in_a_few_lines() -> None:
    problem = TableProblem(random_table())
    study = optuna.create_study(directions=problem.directions, sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(problem, n_trials=15)
    assert study.best_value == problem.evaluate(study.best_params)


def test_repeats_spread_over_processes_are_the_same_runs(table_file: Path) -> None:
    one = replay(str(table_file), ["random", "tpe"], trials=12, repeats=3, processes=1)
    two = replay(str(table_file), ["random", "tpe"], trials=12, repeats=3, processes=2)
    assert one == two


def test_summary_ranks_and_targets(table_file: Path) -> None:
    table = random_table()
    runs = replay(str(table_file), ["grid", "random"], trials=40, repeats=4)
    summaries, times = summarize(runs, table.best())
    assert times[0] == 0 and np.all(np.diff(times) > 0)
    ranks = [s.mean_rank for s in summaries.values()]
    assert sum(ranks) == pytest.approx(3.0)  # two samplers: ranks 1 and 2 per repeat
    for s in summaries.values():
        assert np.all(np.diff(s.by_time, axis=1) >= 0) and s.by_time.max() <= table.best() + 1e-12
        assert 0 <= s.within[0.001] <= s.within[0.002] <= 1


def test_unknown_sampler_is_refused(table_file: Path) -> None:
    with pytest.raises(ReplayError, match="unknown sampler 'cmaes'"):
        replay(str(table_file), ["random", "cmaes"], trials=5, repeats=1)


def test_shuffled_visits_distinct_grid_points_in_a_seeded_uniform_order() -> None:
    table = random_table()
    one, again, other = (replay_one(table, "shuffled", seed=s, trials=40) for s in (3, 3, 4))
    points = [tuple(sorted(t.params.items())) for t in one.trials]
    assert len(set(points)) == len(points)  # without replacement
    assert one == again and [t.params for t in one.trials] != [t.params for t in other.trials]
    grid = [tuple(sorted(t.params.items())) for t in replay_one(table, "grid", seed=3, trials=40).trials]
    assert points != grid


def test_the_pick_is_the_best_validation_trial_and_its_test_accuracy_is_the_points() -> None:
    table = random_table()
    run = replay_one(table, "random", seed=2, trials=30)
    picked = picked_test(run)
    problem = TableProblem(table)
    complete = [t for t in run.finished() if t.value is not None]
    best = max(complete, key=lambda t: t.value)
    assert picked[-1] == best.test == problem.test_accuracy(best.params)
    assert len(picked) == 30


def test_samplers_are_paired_by_repeat_seed(table_file: Path) -> None:
    table = random_table()
    runs = replay(str(table_file), ["random", "tpe"], trials=12, repeats=4)
    summaries, _ = summarize(runs, table.best())
    found = pairs(summaries)
    assert list(found) == ["tpe-random"]
    p = found["tpe-random"]
    assert p.after == [10, 12]
    # TPE's first 10 trials are random search's draws under the same seed: every repeat ties.
    assert p.mean_difference[0] == 0 and p.ties[0] == 4 and p.probability_of_improvement[0] == 0.5
    diff = summaries["tpe"].test_of_best[:, -1] - summaries["random"].test_of_best[:, -1]
    assert p.mean_difference[1] == pytest.approx(diff.mean())
    assert p.ci[1][0] <= p.mean_difference[1] <= p.ci[1][1]
