"""``effects`` on hand-made studies whose effects, noise and variance shares are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from optuna.trial import TrialState

from search.__main__ import main
from search.analysis.anova import exact_anova
from search.analysis.effects import gather_effects
from search.analysis.effects_text import csv_rows, to_json, to_text
from search.analysis.levels import levels
from search.analysis.table import trial_table
from search.analysis.text import format_value
from search.analysis.verdicts import IDENTICAL, MATTERS, UNDETERMINED
from tests.search.analysis.conftest import GRID, add, grid_study, study

LAYERS = {1: 0.0, 3: -0.01, 5: -0.05}
ACTIVATION = {"relu": 0.02, "sigmoid": -0.04, "tanh": 0.0}
RATE = {0.1: -0.03, 1.0: 0.01}


def additive(point: dict) -> float:
    return 0.9 + LAYERS[point["layers"]] + ACTIVATION[point["activation"]] + RATE[point["rate"]]


def test_grid_contrasts_are_matched_and_their_seed_intervals_cover_the_known_effects() -> None:
    s = grid_study(additive, seeds=3, noise=0.003)
    e = gather_effects(s, seed=1)
    effects = {"layers": LAYERS, "activation": ACTIVATION, "rate": RATE}
    assert e.contrast_method.startswith("matched pairs")
    covered = []
    for row in e.main_effects:
        truth = effects[row.parameter]
        level = next(k for k in truth if format_value(k) == row.value)
        reference = next(k for k in truth if format_value(k) == row.reference)
        assert row.n == 18 // len(GRID[row.parameter])
        if level == reference:
            assert row.contrast == 0 and row.ci_low is None
            continue
        # Every other parameter is held fixed in a matched pair: the contrast is the effect's difference.
        expected = truth[level] - truth[reference]
        assert row.pairs == 18 // len(GRID[row.parameter])
        covered.append(row.ci_low <= expected <= row.ci_high)
        assert abs(row.contrast - expected) < 0.004
    # 95% intervals over three seeds each: a miss in one of the 8 is expected now and then, not in three.
    assert sum(covered) >= len(covered) - 2
    assert {r.reference for r in e.main_effects if r.parameter == "activation"} == {"relu"}  # the baseline's
    assert [r.value for r in e.main_effects if r.parameter == "activation"] == ["relu", "sigmoid", "tanh"]


def test_one_seed_grid_contrasts_have_no_interval_and_say_so() -> None:
    e = gather_effects(grid_study(additive, seeds=1, noise=0.003))
    assert all(r.ci_low is None for r in e.main_effects)
    assert any("one seed per grid point" in n for n in e.notes)


def random_study(seeds: int = 2, trials: int = 40, seed: int = 0) -> object:
    rng = np.random.default_rng(seed)
    s = study("random")
    for _ in range(trials):
        point = {k: v[rng.integers(len(v))] for k, v in GRID.items()}
        add(s, point, additive(point) + rng.normal(0, 0.003, seeds))
    return s


def test_random_contrasts_bootstrap_over_trials_and_are_seeded() -> None:
    s = random_study()
    e = gather_effects(s, seed=3)
    assert e.contrast_method.startswith("difference of means")
    sigmoid = next(r for r in e.main_effects if r.value == "sigmoid")
    assert sigmoid.ci_low < sigmoid.contrast < sigmoid.ci_high < 0
    assert gather_effects(s, seed=3).main_effects == e.main_effects
    assert gather_effects(s, seed=4).main_effects != e.main_effects


def test_tpe_main_effects_are_description_only_and_say_so() -> None:
    s = random_study()
    s.set_user_attr("kind", "tpe")
    e = gather_effects(s)
    assert e.contrast_method == "" and all(r.ci_low is None for r in e.main_effects)
    assert any("description only" in n for n in e.notes)
    assert "description only, no interval" in to_text(e)


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
        assert row.adjusted_low <= row.ci_low and row.ci_high <= row.adjusted_high
    assert by["layers", "5"].verdict == MATTERS and by["layers", "5"].p_adjusted < 0.05
    assert by["activation", "tanh"].verdict != MATTERS
    assert by["layers", "5"].p_adjusted >= by["layers", "5"].p
    # Optuna's estimators mislead on oat studies; the changes replace them.
    assert e.importance == {} and e.interactions == []


@pytest.mark.parametrize("seeds", [1, 2])
def test_fewer_than_three_seeds_give_no_verdict_and_say_so(seeds: int) -> None:
    s, _ = oat_study(seeds=seeds)
    e = gather_effects(s)
    assert e.oat and all(r.verdict == UNDETERMINED and r.p is None for r in e.oat)
    assert all("fewer than 3" in r.note for r in e.oat)
    assert any("no verdict below 3 seeds" in n for n in e.notes)
    assert "undetermined (" in to_text(e)


def test_a_move_that_reruns_the_baseline_is_identical_and_left_out_of_the_family() -> None:
    s, _ = oat_study(seeds=4)
    base = next(t for t in s.get_trials() if t.user_attrs.get("point") == 0)
    add(s, {**base.params, "activation": "sigmoid"}, base.user_attrs["seed_values"], point=9)
    e = gather_effects(s)
    same = next(r for r in e.oat if r.value == "sigmoid")
    assert same.verdict == IDENTICAL and same.p_adjusted is None
    assert "Holm over 3 moves" in e.oat_method and "K = 4" in e.oat_method


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
    assert set(data["oat"][0]) >= {
        "parameter", "value", "change", "ci_low", "ci_high", "p", "p_adjusted", "adjusted_low", "adjusted_high",
        "verdict", "test_change", "test_low", "test_high",
    }  # fmt: skip
    assert data["margin"] == 0.002 and "Holm" in data["oat_method"]
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


def test_the_anova_above_chance_leaves_out_the_runs_at_chance() -> None:
    def value(p: dict) -> float:
        stuck = p["layers"] == 5 and p["activation"] == "sigmoid"
        return 0.1 if stuck else additive(p)

    e = gather_effects(grid_study(value))
    # The two stuck points make most of the grid's variance, as an interaction; without them the rest is additive.
    assert e.exact_anova["layers x activation"] > 0.2
    assert e.anova_above_chance["layers x activation"] < 0.01
    assert sum(v for k, v in e.anova_above_chance.items() if " x " not in k and k != "rest") > 0.95


def test_large_main_effects_on_an_unbalanced_random_study_are_not_an_interaction() -> None:
    e = gather_effects(random_study(trials=60))
    assert e.interactions == []
