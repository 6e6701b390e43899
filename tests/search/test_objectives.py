"""Accuracy against cost: multi-objective studies, the gp and nsga2 kinds, and their readers."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from search import app, records
from search.spec import StudySpec
from tests.search.conftest import fast_flags, run_search


def test_a_two_objective_study_maximizes_accuracy_and_minimizes_parameters(
    make_spec: Callable[..., StudySpec],
) -> None:
    spec = make_spec("tpe", objectives=("accuracy", "parameters"), trials=4, max_epochs=1)
    assert app.run_study(spec, []) == 0
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["validation accuracy", "parameters"]
    assert study.user_attrs["objectives"] == "accuracy,parameters"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    for t in complete:  # the objectives are the stored accuracy and the exact parameter count
        assert t.values == [t.user_attrs["val_accuracy"], t.user_attrs["parameter_count"]]
        assert t.intermediate_values == {}  # a multi-objective trial reports nothing: it cannot prune
    front = {t.number for t in study.best_trials}
    dominated = [
        a for a in complete for b in complete if b.values[0] >= a.values[0] and b.values[1] < a.values[1]
        or b.values[0] > a.values[0] and b.values[1] <= a.values[1]
    ]  # fmt: skip
    assert front == {t.number for t in complete} - {t.number for t in dominated}
    assert all(records.MODEL_ARTIFACT in t.user_attrs for t in complete)  # any trial may be on the front


def test_seconds_is_the_trials_training_time(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("random", objectives=("accuracy", "seconds"), trials=2, max_epochs=1)
    assert app.run_study(spec, []) == 0
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    for t in study.trials:
        assert t.values[1] == pytest.approx(t.user_attrs["train_seconds"], abs=1e-3)  # a trial alone: its share
        assert t.values[1] == pytest.approx(records.cost_seconds(t), abs=1e-3)  # is its cost as if alone


def test_gp_and_nsga2_run_live(make_spec: Callable[..., StudySpec]) -> None:
    for kind, objectives in (("gp", ("accuracy",)), ("nsga2", ("accuracy", "parameters"))):
        spec = make_spec(kind, objectives=objectives, trials=3, max_epochs=1)
        assert app.run_study(spec, []) == 0
        study = optuna.load_study(study_name=spec.name, storage=spec.storage)
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
        assert all(records.ASK_SECONDS in t.user_attrs for t in study.trials)  # the sampler's decision time


@pytest.mark.parametrize(
    ("objectives", "kind", "message"),
    [
        (("parameters",), "tpe", "accuracy followed by"),
        (("accuracy", "flops"), "tpe", "'flops'"),
        (("accuracy", "seconds", "seconds"), "random", "each once"),
        (("accuracy", "parameters"), "grid", "fixed points"),
    ],
)
def test_bad_objectives_are_refused_with_the_value(objectives: tuple[str, ...], kind: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StudySpec(kind=kind, objectives=objectives)


def test_a_multi_objective_study_does_not_take_a_pruner() -> None:
    with pytest.raises(ValueError, match="cannot prune"):
        StudySpec(kind="tpe", objectives=("accuracy", "parameters"), pruner="median")
    assert StudySpec(kind="tpe", objectives=("accuracy", "parameters")).pruner_name == "none"


def test_the_command_line_runs_reads_and_refuses_other_objectives(mnist_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    common = ["--storage", url, "--study-name", "front", "--max-epochs", "1", *fast_flags(mnist_dir)]
    done = run_search("tpe", "--objectives", "accuracy,parameters", "--trials", "3", *common, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    best = run_search("best", "--storage", url, "--study-name", "front", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert best.stdout.startswith("Pareto front of 'front':")
    assert "validation accuracy (maximize), parameters (minimize)" in best.stdout
    assert "model artifact:" in best.stdout
    listed = run_search("list", "--storage", url, cwd=tmp_path)
    assert "front  (tpe, 2 objectives)" in listed.stdout, listed.stdout + listed.stderr
    exported = run_search("export", "--storage", url, "--study-name", "front", "--out", "f.csv", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "f.csv").read_text())))
    assert len(rows) == 3 and all(float(r["objective_parameters"]) == int(r["parameter_count"]) for r in rows)
    effects = run_search("effects", "--storage", url, "--study-name", "front", cwd=tmp_path)
    assert effects.returncode == 0 and "Traceback" not in effects.stderr, effects.stderr
    again = run_search("tpe", "--objectives", "accuracy,seconds", "--trials", "4", *common, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].startswith("error: study 'front' exists with objectives=")
    assert "Traceback" not in again.stderr
