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
from search.analysis.verdicts import IDENTICAL, MATTERS, NONZERO, UNDETERMINED
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
        assert row.adjusted_low <= truth <= row.adjusted_high  # the simultaneous interval, the verdict's
        assert row.adjusted_low <= row.ci_low and row.ci_high <= row.adjusted_high
    assert by["layers", "5"].verdict == MATTERS and by["layers", "5"].p_adjusted < 0.05
    assert by["activation", "tanh"].verdict not in (MATTERS, NONZERO)
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
    assert "fewer than 3" in to_text(e)


def test_a_move_that_reruns_the_baseline_is_identical_and_left_out_of_the_family() -> None:
    s, _ = oat_study(seeds=4)
    base = next(t for t in s.get_trials() if t.user_attrs.get("point") == 0)
    add(s, {**base.params, "activation": "sigmoid"}, base.user_attrs["seed_values"], point=9)
    e = gather_effects(s)
    same = next(r for r in e.oat if r.value == "sigmoid")
    assert same.verdict == IDENTICAL and same.p_adjusted is None
    assert "m = 3 moves" in e.oat_method and "K = 4" in e.oat_method


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
    assert data["margin"] == 0.002 and "Bonferroni" in data["oat_method"] and data["failed_seeds"] == []
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


def sim_oat(seeds: int = 5, noise: object = None, effects: dict | None = None, seed: int = 3) -> object:
    import optuna

    from search.analysis import simulate

    s = optuna.create_study(direction="maximize")
    return simulate.oat_study(s, effects or {}, seeds, np.random.default_rng(seed), noise=noise or simulate.PLAIN)


def test_a_collapsed_baseline_seed_is_named_left_out_and_flips_no_sign() -> None:
    from search.analysis import simulate

    effects = {("learning_rate", 0.1): -0.02, ("activation", "sigmoid"): -0.008, ("batch_size", 256): -0.006}
    e = gather_effects(sim_oat(noise=simulate.Noise(collapse=True), effects=effects))
    lr = next(r for r in e.oat if (r.parameter, r.value) == ("learning_rate", "0.1"))
    assert lr.verdict == MATTERS and lr.change == pytest.approx(-0.02, abs=0.002) and lr.seeds == 4
    assert (0, "baseline", 1, 0.1) in [tuple(f) for f in e.failed_seeds]
    text = to_text(e)
    assert "the baseline's failed seed 1: left out of every pair" in text and "Failed seeds" in text


def test_effects_text_fits_120_columns_hides_empty_columns_and_explains_importance() -> None:
    from search.analysis import simulate

    oat = to_text(gather_effects(sim_oat(noise=simulate.Noise(offset=0.0005))))
    grid = to_text(gather_effects(grid_study(additive, seeds=3, noise=0.003)))
    s = random_study()
    s.set_user_attr("kind", "tpe")
    tpe = to_text(gather_effects(s))
    from search.analysis.front import cost_changes_text

    for text in (oat, grid, tpe, cost_changes_text([])):  # effects prints an oat's cost changes after its tables
        assert max(len(line) for line in text.splitlines()) <= 120
    assert "validation-image noise (sd" in oat and "m = 13 moves" in oat
    assert "interval" not in tpe.split("Main effects")[1].splitlines()[1]  # the TPE table has no interval column
    assert "PED-ANOVA: how differently" in grid and "fANOVA: its" in grid


def test_grid_contrasts_need_three_seeds_and_are_simultaneous() -> None:
    two = gather_effects(grid_study(additive, seeds=2, noise=0.003))
    assert all(r.ci_low is None for r in two.main_effects)
    three = gather_effects(grid_study(additive, seeds=3, noise=0.003))
    widths = [r.ci_high - r.ci_low for r in three.main_effects if r.ci_low is not None]
    assert len(widths) == 5 and all(w > 0 for w in widths)
    # Five contrasts: each interval at 1 - 0.05/5, wider than its own 95% one (t, df 2: 9.92 against 4.30).
    row = next(r for r in three.main_effects if r.value == "sigmoid")
    assert "simultaneous" in three.contrast_method and (row.ci_high - row.ci_low) / 2 > 0.003 * 4.3 / np.sqrt(3) / 2


def grid_over_four(interaction: float, seed: int) -> object:
    import optuna

    from search.analysis import simulate

    s = optuna.create_study(direction="maximize")
    s.set_user_attr("kind", "grid")
    s.set_user_attr("vary", ",".join(simulate.GRID_PARAMS))  # a factorial, the others at the baseline
    for t in simulate.grid_trials(3, np.random.default_rng(seed), interaction):
        s.add_trial(t)
    return s


def test_a_grid_over_some_parameters_finds_an_interaction_by_its_f_test() -> None:
    from search.analysis.anova import F_TEST

    e = gather_effects(grid_over_four(0.01, 1))
    assert [i.parameters for i in e.interactions][:1] == [("activation", "learning_rate")]
    assert e.interactions[0].method == F_TEST and e.interactions[0].p < 0.001
    assert e.exact_anova["activation x learning_rate"] > 0.01
    assert gather_effects(grid_over_four(0.0, 2)).interactions == []
    assert max(len(line) for line in to_text(e).splitlines()) <= 120


def test_the_validation_images_noise_is_estimated_from_validation_test_gaps() -> None:
    from search.analysis.sampling import image_noise

    rng = np.random.default_rng(0)
    points, k, offset = 400, 5, 0.001
    train = rng.normal(0, 0.0005, (points, k))
    val = 0.98 + train + rng.normal(0, offset, (points, 1)) + rng.normal(0, 0.0004, (points, k))
    test = 0.97 + train + rng.normal(0, offset, (points, 1)) + rng.normal(0, 0.0004, (points, k))
    found = image_noise(val.tolist(), test.tolist())
    assert found is not None and found.df == points - 1
    assert np.sqrt(found.variance) == pytest.approx(offset, rel=0.15)
    assert image_noise(val.tolist(), [None] * points) is None


@pytest.mark.parametrize("margin", ["inf", "0", "0.1", "-0.001", "nan", "abc"])
def test_a_margin_outside_0_to_0_1_is_refused_in_one_line(
    storage: str, capsys: pytest.CaptureFixture[str], margin: str
) -> None:
    code, out, err = run(capsys, "--storage", storage, "--margin", margin)
    assert code != 0 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "above 0 and below 0.1" in err and repr(margin) in err


def stored_oat(storage: str, seconds: float) -> None:
    import optuna

    from search.analysis import simulate

    stored = optuna.create_study(study_name="costly", storage=storage, direction="maximize")
    trials = simulate.oat_trials({}, 3, np.random.default_rng(0))
    for i, t in enumerate(trials):
        t.set_user_attr("parameter_count", 1000 + i)
        t.set_user_attr("train_seconds", seconds if i == 1 else 1.0 + i)
    stored.set_user_attr("kind", "oat")
    for t in trials:
        stored.add_trial(t)


def test_json_with_an_infinite_cost_is_strict_and_says_so(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    stored_oat(storage, float("inf"))
    code, out, err = run(capsys, "--study-name", "costly", "--storage", storage, "--format", "json")
    assert code == 0 and "Traceback" not in err
    data = json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert data["oat_costs"][0]["seconds"] is None and "non-finite" in err


def test_csv_carries_the_fronts_and_the_oat_cost_changes(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    import csv as csv_module
    import io

    stored_oat(storage, 9.0)
    code, out, _ = run(capsys, "--study-name", "costly", "--storage", storage, "--format", "csv")
    rows = list(csv_module.DictReader(io.StringIO(out)))
    sections = {r["section"] for r in rows}
    assert code == 0 and {"oat", "front_parameters", "front_seconds", "oat_cost"} <= sections
    cost = [r for r in rows if r["section"] == "oat_cost" and float(r["parameters_change"]) == 1]
    assert len(cost) == 1 and float(cost[0]["seconds_change"]) == 8.0  # trial 1: 9 s against the baseline's 1 s
