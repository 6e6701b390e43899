"""Every study kind end to end on fixture data, in a temporary SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch

from search import app, records
from search.analysis.summary import summarize
from search.run.study import StudyError, prepare
from search.spec import StudySpec
from search.storage import artifact_store
from tests.search.conftest import param_sets, states

NAMES = ["hidden_layers", "hidden_units", "activation", "loss", "learning_rate", "epochs", "batch_size"]


def load(spec: StudySpec) -> optuna.Study:
    return optuna.load_study(study_name=spec.name, storage=spec.storage)


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_sampler_studies_reach_their_budget(make_spec: Callable[..., StudySpec], kind: str) -> None:
    spec = make_spec(kind, trials=3)
    assert app.run_study(spec, []) == 0
    counts = states(spec.storage, spec.name)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 3
    assert "RUNNING" not in counts and "WAITING" not in counts
    study = load(spec)
    assert study.metric_names == ["validation accuracy"]
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for t in study.trials:
        assert sorted(t.params) == sorted(NAMES)


def test_trials_resume_to_the_total(make_spec: Callable[..., StudySpec]) -> None:
    app.run_study(make_spec("tpe", trials=2), [])
    spec = make_spec("tpe", trials=4)
    app.run_study(spec, [])
    assert len(param_sets(spec.storage, spec.name)) == 4
    app.run_study(spec, [])  # already complete: runs nothing
    assert len(param_sets(spec.storage, spec.name)) == 4


def test_grid_continues_with_new_points_and_never_repeats(make_spec: Callable[..., StudySpec]) -> None:
    app.run_study(make_spec("grid", trials=3), [])
    spec = make_spec("grid", trials=6)
    app.run_study(spec, [])
    points = param_sets(spec.storage, spec.name, states=("COMPLETE", "PRUNED", "FAIL"))
    assert len(points) == len(set(points)) >= 6
    assert len(param_sets(spec.storage, spec.name)) == 6


def test_grid_with_two_workers_repeats_no_point(make_spec: Callable[..., StudySpec], file_storage: str) -> None:
    spec = make_spec("grid", trials=6, workers=2, storage=file_storage)
    assert app.run_study(spec, []) == 0
    points = param_sets(spec.storage, spec.name, states=("COMPLETE", "PRUNED", "FAIL"))
    assert len(points) == len(set(points))
    counts = states(spec.storage, spec.name)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 6
    assert "RUNNING" not in counts


def test_shared_runs_store_each_point_as_its_run_alone(make_spec: Callable[..., StudySpec]) -> None:
    """The grid's first nine points (learning rates x epochs, maybe nll and cross_entropy, of one
    network) train as one run, and each trial holds the history, value and note of the point
    trained alone."""
    shared = make_spec("grid", trials=9, study_name="shared")
    alone = make_spec("grid", trials=9, study_name="alone", share_runs=False)
    assert app.run_study(shared, []) == 0 and app.run_study(alone, []) == 0
    by_point = {}
    for spec in (shared, alone):
        trials = [t for t in load(spec).trials if t.state.name == "COMPLETE"]
        assert len(trials) == 9
        by_point[spec.name] = {tuple(sorted(t.params.items())): t for t in trials}
    assert by_point["shared"].keys() == by_point["alone"].keys()
    assert len({t.user_attrs["shared_run"] for t in by_point["shared"].values()}) == 1
    assert all("shared_run" not in t.user_attrs for t in by_point["alone"].values())
    fixed = ("hidden_layers", "hidden_units", "activation", "batch_size")
    assert len({tuple(dict(p)[k] for k in fixed) for p in by_point["shared"]}) == 1

    def figures(trial: optuna.trial.FrozenTrial) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records.histories(trial)[0]]

    for point, trial in by_point["shared"].items():
        twin = by_point["alone"][point]
        assert len(records.histories(trial)[0]) == dict(point)["epochs"]
        assert figures(trial) == figures(twin)
        assert trial.value == twin.value
        assert trial.intermediate_values == twin.intermediate_values
        assert trial.user_attrs["shared_run"] == min(t.number for t in by_point["shared"].values())
    # Each trial holds its share of the shared run's time: the shares add up to the run's time.
    shares = [t.user_attrs["train_seconds"] for t in by_point["shared"].values()]
    group = max(t.user_attrs[records.GROUP_SECONDS] for t in by_point["shared"].values())
    assert len(set(shares)) > 1 and sum(shares) <= group + 0.01
    assert summarize(load(shared)).train_seconds == pytest.approx(sum(shares))


def test_oat_runs_its_fifteen_configurations_in_order(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("oat")
    assert app.run_study(spec, []) == 0
    study = load(spec)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 15
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 15
    baseline = trials[0].params
    assert baseline == {
        "hidden_layers": 1,
        "hidden_units": 128,
        "activation": "relu",
        "loss": "nll",
        "learning_rate": 1.0,
        "epochs": 14,
        "batch_size": 64,
    }
    for t in trials[1:]:
        assert sum(t.params[k] != v for k, v in baseline.items()) == 1
    graph_ids = _graph_ids(study)
    for name in NAMES:
        assert f"curves-{name}" in graph_ids
    # A one-seed study's trials' seconds are shares of its runs: their sum is within its wall time.
    summary = summarize(study)
    assert sum(t.user_attrs["train_seconds"] for t in trials) <= 1.5 * summary.wall_seconds


def _graph_ids(study: optuna.Study) -> set[str]:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {key.split(":")[2] for key in attrs if key.startswith("dashboard:plot_data:")}


def test_trials_store_history_note_and_the_best_model(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("random", trials=2, pruner="none")
    app.run_study(spec, [])
    study = load(spec)
    for t in study.trials:
        assert "history" not in t.user_attrs  # a long attr would widen the dashboard's trial page
        [history] = records.histories(t)
        assert len(history) == t.params["epochs"]
        assert set(history[0]) == {
            "epoch",
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "test_loss",
            "test_accuracy",
            "seconds",
        }
        assert t.intermediate_values == {r["epoch"]: r["val_accuracy"] for r in history}
        assert t.value == history[-1]["val_accuracy"]
        assert t.user_attrs["test_accuracy"] == history[-1]["test_accuracy"]
        for key in ("train_seconds", "parameter_count", "device"):
            assert key in t.user_attrs
    best = study.best_trial
    artifact_id = best.user_attrs["model_artifact_id"]
    assert study.user_attrs["best_model"]["artifact_id"] == artifact_id
    with artifact_store(spec.storage).open_reader(artifact_id) as f:
        state = torch.load(f, weights_only=True)
    assert state["0.weight"].shape[1] == 784


def test_diverged_trial_fails_with_its_reason_and_the_study_goes_on(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("grid", trials=2)
    study = app.prepare(spec)
    # The first point diverges (SGD at lr 10 with mse is fine, so push the learning rate through the queue).
    study.set_user_attr("next_point", 10**6)  # hand out no grid points; run the two enqueued below
    study.enqueue_trial(
        {
            "hidden_layers": 5,
            "hidden_units": 256,
            "activation": "relu",
            "loss": "nll",
            "learning_rate": 10.0,
            "epochs": 5,
            "batch_size": 16,
        }
    )
    study.enqueue_trial(
        {
            "hidden_layers": 1,
            "hidden_units": 64,
            "activation": "relu",
            "loss": "nll",
            "learning_rate": 1.0,
            "epochs": 2,
            "batch_size": 64,
        }
    )
    app.run_study(spec, [])
    trials = load(spec).trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    if failed:  # whether lr 10 diverges depends on the data; when it does, it is recorded so
        assert failed[0].user_attrs["fail_reason"].startswith("diverged")
    assert any(t.state.name == "COMPLETE" for t in trials)
    assert all(t.state.name != "RUNNING" for t in trials)


def test_optuna_command_line_reads_the_study(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("tpe", trials=2)
    app.run_study(spec, [])
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("optuna")),
            "trials",
            "--study-name",
            spec.name,
            "--storage",
            spec.storage,
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 2
    assert sorted(rows[0]["params"]) == sorted(NAMES)


def test_study_with_another_kind_is_refused(make_spec: Callable[..., StudySpec]) -> None:
    app.run_study(make_spec("tpe", trials=1, study_name="shared"), [])
    with pytest.raises(app.StudyError, match="shared"):
        app.run_study(make_spec("random", trials=1, study_name="shared"), [])


def test_report_is_html_holding_the_figures(make_spec: Callable[..., StudySpec], tmp_path: Path) -> None:
    spec = make_spec("random", trials=3, pruner="none")
    app.run_study(spec, [])
    out = tmp_path / "report.html"
    assert app.report(spec.storage, spec.name, str(out)) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('class="plotly-graph-div"') >= len(NAMES) + 3
    assert "Learning curves by learning_rate" in page and "Optimization history" in page
    assert "Parallel coordinates" in page and "Training time" in page
    assert "<script src=" not in page and "Plotly" in page  # self-contained: plotly.js is inlined
    from html.parser import HTMLParser

    HTMLParser().feed(page)


def test_a_resume_with_other_options_names_the_options_that_differ(tmp_path: Path) -> None:
    spec = StudySpec(kind="grid", storage=f"sqlite:///{tmp_path / 'resumed.db'}", seeds=3)
    prepare(spec)
    with pytest.raises(StudyError, match="seeds=3, max_epochs=None, not seeds=1, max_epochs=2 as asked here"):
        prepare(spec.replace(seeds=1, max_epochs=2))
