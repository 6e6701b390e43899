"""``effects`` on hand-made studies whose effects, noise and variance shares are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from optuna.trial import TrialState

from search.__main__ import main
from search.analysis.anova import exact_anova
from search.analysis.effects import CLEAR, NOISE, gather_effects
from search.analysis.effects_text import csv_rows, to_json, to_text
from search.analysis.levels import levels
from search.analysis.table import trial_table
from search.analysis.text import format_value
from tests.search.analysis.conftest import GRID, add, grid_study, study

LAYERS = {1: 0.0, 3: -0.01, 5: -0.05}
ACTIVATION = {"relu": 0.02, "sigmoid": -0.04, "tanh": 0.0}
RATE = {0.1: -0.03, 1.0: 0.01}


def additive(point: dict) -> float:
    return 0.9 + LAYERS[point["layers"]] + ACTIVATION[point["activation"]] + RATE[point["rate"]]


def test_main_effects_recover_known_effects_and_their_intervals_cover_them() -> None:
    s = grid_study(additive, seeds=3, noise=0.003)
    e = gather_effects(s, seed=1)
    effects = {"layers": LAYERS, "activation": ACTIVATION, "rate": RATE}
    for row in e.main_effects:
        truth = effects[row.parameter]
        key = next(k for k in truth if format_value(k) == row.value)
        # On a complete grid a level's mean is 0.9 + its effect + the mean effect of every other parameter.
        others = sum(np.mean(list(v.values())) for p, v in effects.items() if p != row.parameter)
        expected = 0.9 + truth[key] + others
        assert row.n == 18 // len(GRID[row.parameter])
        assert row.ci_low <= expected <= row.ci_high
        assert abs(row.mean - expected) < 0.003
        assert row.median_low <= row.median <= row.median_high
    assert [r.value for r in e.main_effects if r.parameter == "activation"] == ["relu", "sigmoid", "tanh"]


def test_bootstrap_intervals_are_seeded() -> None:
    s = grid_study(additive, seeds=2, noise=0.01)
    assert gather_effects(s, seed=3).main_effects == gather_effects(s, seed=3).main_effects
    assert gather_effects(s, seed=3).main_effects != gather_effects(s, seed=4).main_effects


def test_exact_anova_recovers_known_variance_shares() -> None:
    a = {1: -1.0, 3: 0.0, 5: 1.0}
    b = {"relu": -2.0, "sigmoid": 0.0, "tanh": 2.0}
    c = {0.1: -0.5, 1.0: 0.5}
    # A pure interaction of a and b: its rows and columns average to zero.
    ab = {(i, j): a[i] * b[j] / 2 for i in a for j in b}
    s = grid_study(lambda p: a[p["layers"]] + b[p["activation"]] + c[p["rate"]] + ab[p["layers"], p["activation"]])
    total = np.var(list(a.values())) + np.var(list(b.values())) + np.var(list(c.values())) + np.var(list(ab.values()))
    shares = gather_effects(s).exact_anova
    assert shares["layers"] == pytest.approx(np.var(list(a.values())) / total)
    assert shares["activation"] == pytest.approx(np.var(list(b.values())) / total)
    assert shares["rate"] == pytest.approx(np.var(list(c.values())) / total)
    assert shares["layers x activation"] == pytest.approx(np.var(list(ab.values())) / total)
    assert shares["layers x rate"] == pytest.approx(0, abs=1e-12)
    assert shares["rest"] == pytest.approx(0, abs=1e-9)
    assert sum(shares.values()) == pytest.approx(1)


def test_interactions_put_the_interacting_pair_first_with_its_medians() -> None:
    def value(p: dict) -> float:
        stuck = p["layers"] == 5 and p["activation"] == "sigmoid"
        return 0.1 if stuck else additive(p)

    e = gather_effects(grid_study(value, noise=0.001))
    first = e.interactions[0]
    assert first.parameters == ("layers", "activation")
    assert first.medians[2][1] == pytest.approx(0.1, abs=0.005)
    assert first.rows == ["1", "3", "5"] and first.columns == ["relu", "sigmoid", "tanh"]


def test_an_incomplete_grid_gives_no_exact_anova_and_says_why() -> None:
    s = grid_study(additive)
    add(s, {"layers": 1, "activation": "relu", "rate": 0.1}, state=TrialState.FAIL, fail_reason="diverged: NaN")
    trials = [t for t in s.get_trials() if t.state == TrialState.COMPLETE][1:]
    smaller = study("grid")
    for t in trials:
        smaller.add_trial(t)
    e = gather_effects(smaller)
    assert e.exact_anova == {}
    assert any("not complete (1 of 18 points" in n for n in e.notes)


def test_a_grid_value_no_trial_finished_makes_the_grid_incomplete() -> None:
    s = grid_study(additive)
    complete = [t for t in s.get_trials() if t.params["rate"] == 0.1]  # every rate=1.0 point failed
    table = trial_table(complete)
    assert exact_anova(table)[0]  # complete on the values it saw
    shares, why = exact_anova(table, points=18)
    assert shares == {} and "9 of 18 points" in why


def oat_study(seeds: int, noise: float = 0.002) -> tuple:
    """Baseline (1, relu, 1.0); layers 5 costs 0.05 (clear), tanh is the same function (0 change)."""
    rng = np.random.default_rng(7)
    per_seed = rng.normal(0, noise, seeds)  # shared by every point: the seeds are paired
    s = study("oat")
    base = {"layers": 1, "activation": "relu", "rate": 1.0}
    changes = {("layers", 5): -0.05, ("activation", "tanh"): 0.0, ("rate", 0.1): -0.004}
    add(s, base, 0.95 + per_seed, point=0)
    for i, ((k, v), change) in enumerate(changes.items(), start=1):
        add(s, {**base, k: v}, 0.95 + change + per_seed + rng.normal(0, noise / 4, seeds), point=i)
    return s, changes


def test_oat_changes_have_paired_intervals_that_hold_the_change_and_verdicts() -> None:
    s, changes = oat_study(seeds=5)
    e = gather_effects(s)
    by = {(r.parameter, r.value): r for r in e.oat}
    assert set(by) == {("layers", "5"), ("activation", "tanh"), ("rate", "0.1")}
    for (k, v), truth in changes.items():
        row = by[k, format_value(v)]
        assert row.paired and row.seeds == 5
        assert row.ci_low <= row.change <= row.ci_high
        assert row.ci_low <= truth <= row.ci_high
    assert by["layers", "5"].verdict == CLEAR
    assert by["activation", "tanh"].verdict == NOISE
    # Optuna's estimators mislead on oat studies; the changes replace them.
    assert e.importance == {} and e.interactions == []


def test_one_seed_gives_no_interval_and_no_verdict_and_says_so() -> None:
    s, _ = oat_study(seeds=1)
    e = gather_effects(s)
    assert e.oat and all(r.ci_low is None and r.verdict is None for r in e.oat)
    assert any("one seed" in n for n in e.notes)
    assert "no interval (one seed)" in to_text(e)


def test_failures_count_trials_at_chance_and_diverged_runs_per_value() -> None:
    s = study("random")
    add(s, {"layers": 5, "activation": "sigmoid"}, [0.11])
    add(s, {"layers": 5, "activation": "relu"}, [0.95])
    add(s, {"layers": 1, "activation": "sigmoid"}, [0.93])
    add(s, {"layers": 1, "activation": "relu"}, state=TrialState.FAIL, fail_reason="diverged: the loss became NaN")
    add(s, {"layers": 3, "activation": "relu"}, state=TrialState.FAIL, fail_reason="interrupted")
    rows = {(f.parameter, f.value): f for f in gather_effects(s).failures}
    assert rows["layers", "5"].at_chance == 1 and rows["layers", "5"].diverged == 0
    assert rows["layers", "1"].diverged == 1 and rows["layers", "1"].n == 2
    assert rows["activation", "relu"].diverged == 1
    assert ("layers", "3") not in rows  # an interrupted trial is not a failure of its values


def test_continuous_values_are_binned_in_terciles_and_said_so() -> None:
    rng = np.random.default_rng(0)
    s = study("tpe")
    for rate in rng.uniform(0.01, 10, 30):
        add(s, {"learning_rate": float(rate), "layers": 1}, [0.9 + 0.001 * rate])
    e = gather_effects(s)
    rows = [r for r in e.main_effects if r.parameter == "learning_rate"]
    assert len(rows) == 3 and sum(r.n for r in rows) == 30
    assert all("–" in r.value for r in rows)
    assert "quantile bins" in e.binning["learning_rate"] and e.binning["layers"] == "each value"
    assert rows[0].mean < rows[2].mean


def test_levels_keep_few_values_and_bin_many_numbers() -> None:
    assert levels([0.1, 1.0, 10.0, 1.0]).labels == ["0.1", "1", "10"]
    assert levels(["tanh", "relu"], order=("relu", "sigmoid", "tanh")).labels == ["relu", "tanh"]
    many = levels(list(range(10, 100)))
    assert many.binned and len(many.labels) == 3 and many.labels[0].startswith("10–")


def test_json_and_csv_carry_the_issue_keys() -> None:
    s, _ = oat_study(seeds=3)
    data = json.loads(json.dumps(to_json(gather_effects(s))))
    assert {"main_effects", "oat", "interactions", "importance", "at_chance"} <= set(data)
    assert set(data["main_effects"][0]) >= {"parameter", "value", "n", "median", "mean", "best", "ci_low", "ci_high"}
    assert set(data["oat"][0]) >= {"parameter", "value", "change", "ci_low", "ci_high", "verdict"}
    grid = gather_effects(grid_study(additive, seeds=2, noise=0.01))
    assert set(to_json(grid)["importance"]) == {"PedAnovaImportanceEvaluator", "FanovaImportanceEvaluator"}
    sections = {r["section"] for r in csv_rows(grid)}
    assert {"main_effect", "exact_anova", "failures", "FanovaImportanceEvaluator"} <= sections


@pytest.fixture
def storage(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(["effects", *args])
    out, err = capsys.readouterr()
    return int(stop.value.code or 0), out, err


def test_effects_command_prints_json(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    s, _ = oat_study(seeds=3)
    stored = optuna.create_study(study_name="hand-made", storage=storage, direction="maximize")
    stored.set_user_attr("kind", "oat")
    for t in s.get_trials():
        stored.add_trial(t)
    code, out, _ = run(capsys, "--study-name", "hand-made", "--storage", storage, "--format", "json")
    assert code == 0 and json.loads(out)["oat"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [("none", "no study named 'x'"), ("empty", "has no complete trial"), ("bad", "")],
)
def test_effects_bad_input_is_one_line(
    storage: str, tmp_path, capsys: pytest.CaptureFixture[str], setup: str, expected: str
) -> None:
    import optuna

    if setup == "empty":
        optuna.create_study(study_name="x", storage=storage)
    if setup == "bad":
        (tmp_path / "junk.db").write_text("not a database")
        storage = f"sqlite:///{tmp_path / 'junk.db'}"
    code, out, err = run(capsys, "--study-name", "x", "--storage", storage)
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expected in err


def test_no_interaction_is_read_from_cells_of_one_trial() -> None:
    s = study("tpe")
    for i, (layers, activation) in enumerate([(1, "relu"), (3, "tanh"), (5, "sigmoid"), (1, "tanh"), (3, "sigmoid")]):
        add(s, {"layers": layers, "activation": activation}, [0.5 + 0.1 * i])
    assert gather_effects(s).interactions == []
