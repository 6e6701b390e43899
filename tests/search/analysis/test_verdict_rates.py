"""The verdicts' error rates and power on hundreds of synthetic studies whose truth is known (slow).

Each case draws its studies from one seeded generator (``search.analysis.simulate``: a network's
training noise shared by its validation and test accuracies, steps of 1/10,000) and reads them
with the same code ``effects`` runs. A rate is checked by its Clopper-Pearson 95% bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from search.analysis import simulate
from search.analysis.anova import F_TEST, interactions
from search.analysis.contrasts import seed_matrix
from search.analysis.oat import oat_family
from search.analysis.sampling import image_noise
from search.analysis.table import trial_table
from search.analysis.verdicts import CLAIMS, MATTERS, clopper_pearson
from search.records import seed_values

STUDIES = 200  # per case: at 6 claiming studies or fewer the upper bound is at most 0.064
BASELINE = simulate.OAT_POINTS[0]
NULL_CASES = {
    "gaussian": simulate.Noise(),
    "t(3) tails": simulate.Noise(tails=3),
    "one collapsed baseline seed": simulate.Noise(collapse=True),
    "three moves 15x noisier than the baseline": simulate.Noise(noisier=15, noisy=3),
    "a seed effect shared by every point": simulate.Noise(seed_effect=0.002),
    "validation-image offset sd 0.0005": simulate.Noise(offset=0.0005),
}


def rows(effects: dict[tuple[str, Any], float], seeds: int, rng: np.random.Generator, noise: simulate.Noise) -> list:
    return oat_family(simulate.oat_trials(effects, seeds, rng, noise), BASELINE).rows


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [5, 10])
@pytest.mark.parametrize("case", list(NULL_CASES))
def test_null_studies_claim_a_move_rarely(case: str, seeds: int) -> None:
    rng = np.random.default_rng(list(NULL_CASES).index(case) * 100 + seeds)
    claiming = sum(
        any(r.verdict in CLAIMS for r in rows({}, seeds, rng, NULL_CASES[case])) for _ in range(STUDIES)
    )
    low, high = clopper_pearson(claiming, STUDIES)
    print(f"{case}, K={seeds}: {claiming}/{STUDIES} claim a move, 95% interval [{low:.3f}, {high:.3f}]")
    assert high <= 0.07


@pytest.mark.slow
def test_one_collapsed_baseline_seed_leaves_large_effects_matter_with_their_sign() -> None:
    rng = np.random.default_rng(11)
    effects = {("learning_rate", 0.1): -0.02, ("activation", "sigmoid"): -0.008, ("batch_size", 256): -0.006}
    matters = 0
    for _ in range(200):
        found = {(r.parameter, r.value): r for r in rows(effects, 5, rng, simulate.Noise(collapse=True))}
        row = found["learning_rate", "0.1"]
        assert row.change < 0 and row.seeds == 4 and row.note == ""  # the baseline's seed is named once, below
        matters += row.verdict == MATTERS
    low, high = clopper_pearson(matters, 200)
    print(f"learning rate 0.1 (-0.02) with a collapsed baseline seed: matters in {matters}/200 [{low:.3f}, {high:.3f}]")
    assert low >= 0.95


@pytest.mark.slow
def test_half_the_margin_is_rarely_matters_at_ten_seeds() -> None:
    rng = np.random.default_rng(12)
    matters = sum(
        next(r for r in rows({("hidden_units", 256): -0.001}, 10, rng, simulate.PLAIN) if r.value == "256").verdict
        == MATTERS
        for _ in range(STUDIES)
    )
    low, high = clopper_pearson(matters, STUDIES)
    print(f"a true change of half the margin, K=10: matters in {matters}/{STUDIES} [{low:.3f}, {high:.3f}]")
    assert matters / STUDIES <= 0.05


def grid_pairs(interaction: float, rng: np.random.Generator) -> list[tuple[str, str]]:
    trials = simulate.grid_trials(3, rng, interaction)
    table = trial_table(trials)
    noise = image_noise([seed_values(t) for t in trials], [t.user_attrs["seed_test_accuracies"] for t in trials])
    found = interactions(table, seed_matrix(trials), noise)
    assert all(i.method == F_TEST for i in found)
    return [i.parameters for i in found]


@pytest.mark.slow
def test_an_interaction_beside_strong_main_effects_is_found() -> None:
    rng = np.random.default_rng(13)
    found = sum(("activation", "learning_rate") in grid_pairs(0.01, rng) for _ in range(100))
    print(f"learning rate x activation of 0.01 on an 81-point grid, K=3: found in {found}/100")
    assert found >= 95


@pytest.mark.slow
def test_additive_grids_rarely_report_a_pair() -> None:
    rng = np.random.default_rng(14)
    reporting = sum(bool(grid_pairs(0.0, rng)) for _ in range(200))
    low, high = clopper_pearson(reporting, 200)
    print(f"additive 81-point grids, K=3: a pair reported in {reporting}/200 [{low:.3f}, {high:.3f}]")
    assert reporting / 200 <= 0.05


@pytest.mark.slow
def test_pure_noise_random_studies_rarely_report_a_pair() -> None:
    import optuna

    rng = np.random.default_rng(15)
    reporting = 0
    for _ in range(200):
        study = optuna.create_study(direction="maximize")
        trials = simulate.noise_study(study, trials=50, seeds=2, rng=rng).get_trials(deepcopy=False)
        noise = image_noise([seed_values(t) for t in trials], [t.user_attrs["seed_test_accuracies"] for t in trials])
        reporting += bool(interactions(trial_table(trials), seed_matrix(trials), noise))
    low, high = clopper_pearson(reporting, 200)
    print(f"pure-noise random studies (50 trials, K=2): a pair reported in {reporting}/200 [{low:.3f}, {high:.3f}]")
    assert reporting / 200 <= 0.05
