"""The verdicts checked by seeded simulation on studies whose truth is known, read by ``effects --format json``.

Each study is written with plain Optuna in the stored trial record and read back
through the command line, as a user's study is. Accuracies come in steps of 1/10,000
with a run's noise of sd 0.0006 (a 10,000-image validation set on all of MNIST).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from search.__main__ import main
from search.analysis import simulate
from search.analysis.verdicts import Estimate, decide, failed_seeds, holm, paired_estimate, wilson

NULL_STUDIES = 20
LARGE = {("hidden_layers", 5): -0.02, ("activation", "sigmoid"): -0.008}


def effects_json(capsys: pytest.CaptureFixture[str], storage: str, name: str, *args: str) -> dict[str, Any]:
    with pytest.raises(SystemExit) as stop:
        main(["effects", "--study-name", name, "--storage", storage, "--format", "json", *args])
    out, err = capsys.readouterr()
    assert stop.value.code in (0, None), err
    return json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


def stored(storage: str, name: str) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=storage, direction="maximize")


def rows(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["parameter"], r["value"]): r for r in data["oat"]}


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.mark.slow
def test_null_studies_read_through_the_command_line_claim_little(
    storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The rates themselves are checked on hundreds of studies in test_verdict_rates.py (slow); here 20
    # studies read as a user's are, through the command line.
    rng = np.random.default_rng(2026)
    claiming = 0
    for i in range(NULL_STUDIES):
        simulate.oat_study(stored(storage, f"null{i}"), {}, seeds=5, rng=rng)
        data = effects_json(capsys, storage, f"null{i}")
        verdicts = {r["verdict"] for r in data["oat"]}
        claiming += bool(verdicts & {"matters", "nonzero"})
        assert rows(data)["loss", "cross_entropy"]["verdict"] == "identical"
        assert len(data["oat"]) == 14 and "m = 13 moves" in data["oat_method"]
    assert claiming <= 3


def test_large_effects_matter_and_replicate_on_test(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    simulate.oat_study(stored(storage, "large"), LARGE, seeds=5, rng=np.random.default_rng(1))
    found = rows(effects_json(capsys, storage, "large"))
    for (param, value), change in LARGE.items():
        row = found[param, str(value)]
        assert row["verdict"] == "matters" and row["p_adjusted"] < 0.05
        assert row["adjusted_low"] <= change <= row["adjusted_high"] < -0.002
        assert row["test_low"] < row["test_change"] < row["test_high"] < 0 and row["replicates"] is True
    assert found["loss", "cross_entropy"]["verdict"] == "identical"


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_a_constant_shift_of_two_images_is_never_a_zero_width_matters(
    storage: str, capsys: pytest.CaptureFixture[str], seeds: int
) -> None:
    shift = {("hidden_units", 256): 0.0002}
    simulate.oat_study(stored(storage, "shift"), {}, seeds=seeds, rng=np.random.default_rng(3), shifts=shift)
    row = rows(effects_json(capsys, storage, "shift"))["hidden_units", "256"]
    assert row["change"] == pytest.approx(0.0002)
    assert row["verdict"] == "undetermined" and row["p"] is None and row["note"]


def test_a_tiny_effect_over_ten_seeds_is_negligible(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    effect = {("epochs", 25): 0.0001}
    simulate.oat_study(stored(storage, "tiny"), effect, seeds=10, rng=np.random.default_rng(4))
    row = rows(effects_json(capsys, storage, "tiny"))["epochs", "25"]
    assert row["verdict"] == "negligible"
    assert row["adjusted_low"] >= -0.002 and row["adjusted_high"] <= 0.002


def test_a_wider_margin_makes_a_small_change_negligible(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    simulate.oat_study(stored(storage, "m"), {("epochs", 5): -0.008}, seeds=5, rng=np.random.default_rng(5))
    assert rows(effects_json(capsys, storage, "m"))["epochs", "5"]["verdict"] == "matters"
    wide = effects_json(capsys, storage, "m", "--margin", "0.01")
    assert rows(wide)["epochs", "5"]["verdict"] == "negligible" and wide["margin"] == 0.01


def test_pure_noise_random_studies_rarely_report_an_interaction(
    storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The F test with Holm over the pairs reports a pair on pure noise in at most 5% of studies (the rate is
    # checked on 200 studies in test_verdict_rates.py): two or more of five happens in 2.3% of draws.
    rng = np.random.default_rng(6)
    reporting = 0
    for i in range(5):
        simulate.noise_study(stored(storage, f"noise{i}"), trials=50, seeds=2, rng=rng)
        reporting += bool(effects_json(capsys, storage, f"noise{i}")["interactions"])
    assert reporting <= 1


def test_the_command_line_reads_a_synthetic_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    simulate.oat_study(stored(storage, "cli"), LARGE, seeds=5, rng=np.random.default_rng(7))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    args = [sys.executable, "-m", "search", "effects", "--study-name", "cli", "--storage", storage, "--format", "json"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    found = rows(json.loads(done.stdout))
    assert found["hidden_layers", "5"]["verdict"] == "matters"


def test_holm_is_monotone_and_keeps_untested_moves_in_the_family() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, None]) == [pytest.approx(0.02), None]
    assert holm([]) == []


def test_the_four_answers_read_the_simultaneous_interval_against_the_margin() -> None:
    def at(change: float, se: float) -> str:
        return decide(Estimate(change, se * se, 1e6), m=1, margin=0.002)[0]

    # With infinite df the simultaneous interval of one comparison is the change +- 1.96 se.
    assert at(-0.004, 0.0005) == "matters"  # [-0.0050, -0.0030]: beyond -0.002
    assert at(-0.0025, 0.0005) == "nonzero"  # [-0.0035, -0.0015]: excludes 0, not beyond the margin
    assert at(0.0002, 0.0005) == "negligible"  # TOST interval (90%) [-0.0006, +0.0010] inside +-0.002
    assert at(0.001, 0.0005) == "negligible"  # differs from 0 (95%: [+0.00002, +0.00198]), but inside the margin
    assert at(0.001, 0.002) == "undetermined"
    # A claim needs the rank test where K lets it reach the level.
    assert decide(Estimate(-0.004, 0.0005**2, 1e6), 1, 0.002, rank_agrees=False)[0] == "undetermined"
    # Bonferroni over m = 13 widens the interval: 1.96 se is no longer enough to claim.
    assert decide(Estimate(-0.0035, 0.0013**2, 1e6), 1, 0.002)[0] == "nonzero"  # [-0.0060, -0.0010]
    assert decide(Estimate(-0.0035, 0.0013**2, 1e6), 13, 0.002)[0] == "undetermined"  # [-0.0073, +0.0003]
    est, why = paired_estimate(np.array([0.98, 0.97]), np.array([0.97, 0.96]))
    assert est is None and "fewer than 3" in why
    est, why = paired_estimate(np.array([0.981, 0.971, 0.961]), np.array([0.98, 0.97, 0.96]))
    assert est is None and "no variance" in why


def test_failed_seeds_are_nan_or_at_chance_beside_working_ones() -> None:
    assert failed_seeds([0.10, 0.98, 0.97]).tolist() == [True, False, False]
    assert failed_seeds([0.98, float("nan"), 0.97]).tolist() == [False, True, False]
    # Every seed at chance: chance is the point's result (the value collapses the network), kept.
    assert failed_seeds([0.10, 0.11, 0.09]).tolist() == [False, False, False]


def test_wilson_intervals_hold_the_share_and_stay_in_0_1() -> None:
    assert wilson(0, 10)[0] == 0 and 0 < wilson(0, 10)[1] < 0.35
    low, high = wilson(5, 10)
    assert low < 0.5 < high and wilson(10, 10)[1] == pytest.approx(1.0)
