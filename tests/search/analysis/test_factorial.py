"""``effects`` on a ``grid --vary`` factorial: the varied parameters only, their exact ANOVA and every pair's test."""

from __future__ import annotations

import itertools

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from search.analysis.anova import F_TEST, INTERACTS, NOT_SHOWN, grid_size
from search.analysis.effects import gather_effects
from search.analysis.effects_text import csv_rows, to_json, to_text
from search.analysis.front import fronts_text, study_fronts
from search.space import SEVEN
from trainer.config import TrainConfig

VARY = ("hidden_layers", "activation", "learning_rate")
EFFECTS = {
    "hidden_layers": {1: 0.0, 3: -0.01, 5: -0.04},
    "activation": {"relu": 0.0, "sigmoid": -0.03, "tanh": -0.01},
    "learning_rate": {0.1: -0.05, 1.0: 0.0, 10.0: -0.002},
}
DISTRIBUTIONS = {
    "hidden_layers": IntDistribution(1, 5),
    "hidden_units": IntDistribution(32, 512, log=True),
    "activation": CategoricalDistribution(("relu", "sigmoid", "tanh")),
    "loss": CategoricalDistribution(("nll", "cross_entropy", "mse")),
    "learning_rate": FloatDistribution(0.01, 10.0, log=True),
    "epochs": IntDistribution(1, 25),
    "batch_size": CategoricalDistribution((16, 32, 64, 128, 256)),
}


def factorial(
    vary: tuple[str, ...] = VARY, seeds: int = 3, interaction: float = 0.02, skip: int | None = None, seed: int = 0
) -> optuna.Study:
    """A ``grid --vary`` study as the command stores it: the varied parameters over their grid values, the others
    at the baseline, every trial with all seven parameters and ``seeds`` seeds; 5 layers with sigmoid lose
    ``interaction`` more. ``skip``: a point left unfinished."""
    rng = np.random.default_rng(seed)
    s = optuna.create_study(direction="maximize")
    for key, value in {"kind": "grid", "regularization": False, "seeds": seeds, "max_epochs": 2,
                       "vary": ",".join(vary)}.items():  # fmt: skip
        s.set_user_attr(key, value)
    base = {p.name: getattr(TrainConfig(), p.name) for p in SEVEN} | {"epochs": 2}
    grids = [p.grid if p.name in vary else (base[p.name],) for p in SEVEN]
    for i, combo in enumerate(itertools.product(*grids)):
        if i == skip:
            continue
        point = dict(zip(base, combo, strict=True))
        mean = 0.9 + sum(EFFECTS[p][point[p]] for p in vary if p in EFFECTS)
        if point["hidden_layers"] == 5:
            mean -= {"sigmoid": interaction, "relu": -interaction}.get(point["activation"], 0.0)
        values = mean + rng.normal(0, 0.002, seeds)
        s.add_trial(create_trial(
            params=point, distributions=DISTRIBUTIONS, value=float(values.mean()),
            user_attrs={"seeds": list(range(1, seeds + 1)), "seed_values": values.tolist(),
                        "parameter_count": 1000 + i, "network_seconds": 1.0 + i},
        ))  # fmt: skip
    return s


def test_the_grid_of_a_factorial_is_its_varied_parameters_under_the_epochs_cap() -> None:
    names = [p.name for p in SEVEN]
    s = factorial()
    assert grid_size(s, names) == 27
    s.set_user_attr("vary", "epochs,learning_rate")
    s.set_user_attr("max_epochs", 10)  # 5, 14, 25 under 10: 5 and 10
    assert grid_size(s, names) == 6
    s.set_user_attr("vary", "")  # the full grid
    assert grid_size(s, names) == 3**6 * 2
    s.set_user_attr("max_epochs", None)
    assert grid_size(s, names) == 3**7
    assert grid_size(s, ["layers", "rate"]) is None  # another space


def test_a_complete_three_parameter_factorial_gets_its_exact_anova_and_leaves_the_fixed_ones_out() -> None:
    e = gather_effects(factorial())
    assert not [n for n in e.notes if "not complete" in n]
    assert set(e.exact_anova) == {*VARY, *(f"{a} x {b}" for a, b in itertools.combinations(VARY, 2)), "rest"}
    assert abs(sum(e.exact_anova.values()) - 1) < 1e-9 and e.exact_anova["hidden_layers x activation"] > 0.03
    assert e.anova_above_chance and set(e.anova_above_chance) <= set(e.exact_anova)
    # The four held at the baseline have one value each: no row, no share, one note naming them.
    assert {r.parameter for r in e.main_effects} == set(VARY)
    assert {r.parameter for r in e.failures} == set(VARY)
    for shares in e.importance.values():
        assert set(shares) == set(VARY)
    assert e.fixed == {"hidden_units": "128", "loss": "nll", "epochs": "2", "batch_size": "64"}
    assert [n for n in e.notes if n.startswith("held fixed")] == [
        "held fixed, left out: hidden_units 128, loss nll, epochs 2, batch_size 64"
    ]
    # The matched contrasts find the effects put in (every other varied parameter held in each pair).
    sigmoid = next(r for r in e.main_effects if r.value == "sigmoid")
    assert sigmoid.pairs == 9 and sigmoid.ci_low < -0.03 - 0.04 / 3 < sigmoid.ci_high  # 5 layers: -0.02 against +0.02


def test_every_varied_pair_is_tested_against_the_seeds_and_given_a_verdict() -> None:
    e = gather_effects(factorial())
    tests = {t.parameters: t for t in e.interaction_tests}
    assert set(tests) == set(itertools.combinations(VARY, 2))
    assert all(t.method == F_TEST for t in tests.values())
    assert tests["hidden_layers", "activation"].verdict == INTERACTS and tests["hidden_layers", "activation"].p < 1e-3
    assert tests["hidden_layers", "learning_rate"].verdict == NOT_SHOWN
    assert tests["activation", "learning_rate"].verdict == NOT_SHOWN
    assert [i.parameters for i in e.interactions] == [("hidden_layers", "activation")]
    data = to_json(e)
    assert [t["parameters"] for t in data["interaction_tests"]] == [list(p) for p in itertools.combinations(VARY, 2)]
    assert {r["parameter"] for r in csv_rows(e) if r["section"] == "interaction_test"} == {
        f"{a} x {b}" for a, b in itertools.combinations(VARY, 2)
    }
    # Without an interaction every pair is still listed, none interacts.
    null = gather_effects(factorial(interaction=0.0, seed=1))
    assert len(null.interaction_tests) == 3 and null.interactions == []
    assert {t.verdict for t in null.interaction_tests} == {NOT_SHOWN}


def test_the_factorial_in_text_names_the_varied_parameters_only_within_120_columns() -> None:
    s = factorial()
    text = to_text(gather_effects(s))
    assert max(len(line) for line in text.splitlines()) <= 120
    main = text.split("Main effects")[1].split("Interaction tests")[0]
    assert "hidden_layers" in main and "batch_size" not in main and "hidden_units" not in main
    tests = text.split("Interaction tests")[1].split("\n\n")[0]
    assert "hidden_layers x activation" in tests and "interacts" in tests and "not shown" in tests
    importance = text.split("Importance")[1].split("\n\n")[0]
    assert "batch_size" not in importance and "exact grid ANOVA" in importance
    assert "note: held fixed, left out: hidden_units 128" in text
    fronts = fronts_text(study_fronts(s))
    assert max(len(line) for line in fronts.splitlines()) <= 120
    assert all(line == line.rstrip() for line in fronts.splitlines())


def test_a_factorial_missing_a_point_is_incomplete_out_of_its_own_grid() -> None:
    e = gather_effects(factorial(skip=4))
    assert e.exact_anova == {}
    assert "the grid is not complete (1 of 27 points have no complete trial): no exact ANOVA" in e.notes


def test_effect_of_depth_within_each_value_of_the_others_shows_where_it_depends_on_them() -> None:
    """5 layers lose 0.04 on average, 0.06 with sigmoid and 0.02 with relu: the overall contrast hides
    what ``--effect-of hidden_layers`` shows per activation, each with its simultaneous interval and verdict."""
    e = gather_effects(factorial(), effect_of="hidden_layers")
    assert len(e.given) == 2 * 3 * 2  # activation and learning rate, three values each; 3 and 5 layers
    rows = {(g.given, g.given_value, g.value): g for g in e.given}
    for activation, truth in (("sigmoid", -0.06), ("relu", -0.02), ("tanh", -0.04)):
        g = rows["activation", activation, "5"]
        assert g.reference == "1" and g.pairs == 3
        assert g.low < truth < g.high and abs(g.change - truth) < 0.005
        assert g.verdict == "matters"
    assert all(g.low is not None and g.low < g.high for g in e.given)
    for lr in ("0.1", "1", "10"):  # 3 layers lose 0.01 whatever the learning rate
        g = rows["learning_rate", lr, "3"]
        assert g.low < -0.01 < g.high and g.verdict != "negligible", g  # three seeds: too few to say more
    text = to_text(e)
    assert "hidden_layers within each value of the others" in text and "m = 12 contrasts" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    assert len(to_json(e)["given"]) == 12
    assert sum(r["section"].startswith("given ") for r in csv_rows(e)) == 12
    assert gather_effects(factorial()).given == ()  # only when asked


def test_effect_of_a_fixed_or_unknown_parameter_is_refused_in_one_line() -> None:
    for name in ("hidden_units", "depth"):  # held fixed by the factorial; not a parameter
        try:
            gather_effects(factorial(), effect_of=name)
        except ValueError as e:
            assert f"--effect-of {name}" in str(e) and "hidden_layers, activation, learning_rate" in str(e)
            assert "\n" not in str(e)
        else:
            raise AssertionError(f"--effect-of {name} was accepted")
