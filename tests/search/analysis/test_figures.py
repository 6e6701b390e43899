"""The figures' gathering functions on hand-made trials: curves, timing, effects figures, notes."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from search.analysis.effects import gather_effects
from search.analysis.effects_figures import effects_figures, importance_info, oat_order, strips_info
from search.analysis.figures import (
    learning_curves_figure,
    learning_curves_info,
    log_ticks,
    mean_curves,
    study_figures,
    time_vs_batch_info,
)
from search.analysis.note import history_markdown, study_note
from search.analysis.summary import finished_trials
from tests.search.analysis.conftest import add, grid_study, study
from tests.search.analysis.test_effects import additive, oat_study


def history(epochs: int, loss: float, seconds: float = 1.0) -> list[dict[str, float]]:
    return [
        {"epoch": e, "train_loss": loss, "train_accuracy": 0.5, "val_loss": loss, "val_accuracy": 0.5,
         "test_loss": loss, "test_accuracy": 0.5, "seconds": seconds}
        for e in range(1, epochs + 1)
    ]  # fmt: skip


def test_curves_average_each_epoch_over_the_trials_that_reached_it() -> None:
    s = study("random")
    add(s, {"layers": 3}, [0.9], histories=[history(6, 1.0)])
    add(s, {"layers": 3}, [0.9], histories=[history(9, 3.0)])
    (group,) = learning_curves_info(finished_trials(s), "layers")
    assert group.epochs == list(range(1, 10))
    assert group.counts == [2] * 6 + [1] * 3
    assert group.metrics["val_loss"] == [2.0] * 6 + [3.0] * 3


def test_a_trials_curve_is_the_mean_over_its_seeds() -> None:
    s = study("random")
    add(s, {"layers": 1}, [0.9, 0.8], histories=[history(2, 1.0), history(2, 3.0)])
    (group,) = learning_curves_info(finished_trials(s), "layers")
    assert group.trials == 1 and group.counts == [1, 1] and group.metrics["val_loss"] == [2.0, 2.0]


def test_a_metric_some_histories_lack_is_left_out() -> None:
    old = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in history(2, 1.0)]
    epochs, metrics, counts = mean_curves([old, history(2, 1.0)])
    assert epochs == [1, 2] and counts == [2, 2] and "val_loss" not in metrics and "test_loss" in metrics


def test_continuous_values_are_binned_in_the_legend() -> None:
    s = study("tpe")
    for units in range(32, 32 + 12 * 20, 20):
        add(s, {"units": units}, [0.9], histories=[history(2, 1.0)])
    groups = learning_curves_info(finished_trials(s), "units")
    assert len(groups) == 3 and sum(g.trials for g in groups) == 12
    assert groups[0].label == "32–92"


def test_time_is_per_network_epoch_in_shared_runs() -> None:
    s = study("grid")
    for lr in (0.1, 1.0):  # two networks trained in one run: its epochs took 4 s for both
        add(s, {"batch_size": 64, "rate": lr}, [0.9], histories=[history(2, 1.0, seconds=4.0)], shared_run=0)
    add(s, {"batch_size": 64, "rate": 1.0}, [0.9], histories=[history(2, 1.0, seconds=2.5)])
    points = time_vs_batch_info(finished_trials(s))
    assert sorted(p.seconds_per_network_epoch for p in points) == [2.0, 2.0, 2.5]
    assert sorted(p.networks for p in points) == [1, 2, 2]


def test_strips_hold_every_trial_on_the_effects_levels() -> None:
    s = grid_study(additive)
    strips = strips_info(s, gather_effects(s))
    assert list(strips) == ["layers", "activation", "rate"]
    relu = next(x for x in strips["activation"] if x.value == "relu")
    assert len(relu.values) == 6 and relu.effect.mean == pytest.approx(sum(relu.values) / 6)


def test_oat_changes_are_drawn_largest_first() -> None:
    s, _ = oat_study(seeds=3)
    e = gather_effects(s)
    ordered = oat_order(e.oat)
    sizes = [abs(c.change) for c in ordered]
    assert sizes == sorted(sizes)  # plotly draws the first category at the bottom
    assert "effects-oat" in effects_figures(s, e) and "effects-importance" not in effects_figures(s, e)


def test_importance_figure_shows_the_exact_anova_beside_optunas_estimators() -> None:
    s = grid_study(additive, seeds=2, noise=0.001)
    shares = importance_info(gather_effects(s))
    assert set(shares) == {"PED-ANOVA", "fANOVA", "exact grid ANOVA", "ANOVA above chance"}
    assert sum(shares["exact grid ANOVA"].values()) == pytest.approx(1)
    figures = study_figures(s, ["layers", "activation", "rate"])
    assert {"effects-values", "effects-importance"} <= set(figures)


def test_study_note_carries_the_oat_effects_instead_of_importances() -> None:
    s, _ = oat_study(seeds=3)
    note = study_note(s)
    assert "One at a time" in note and "matters" in note and "Bonferroni" in note
    assert "Importance" not in note and "fANOVA" not in note and "Main effects" not in note
    assert "validation accuracy 0.9" in note and "0.95000" not in note  # rounded to four places


def test_study_note_before_any_complete_trial() -> None:
    s = study("tpe")
    add(s, {"layers": 1}, state=TrialState.FAIL, fail_reason="interrupted")
    note = study_note(s)
    assert "1 interrupted, 0 failed" in note and "Which choices matter" not in note


def test_history_is_a_readable_table_per_seed() -> None:
    text = history_markdown([history(2, 1.0), history(2, 2.0)], seeds=[7, 8])
    assert "**seed 7**" in text and "**seed 8**" in text
    lines = text.splitlines()
    assert lines[2].startswith("| epoch | train loss |") and all(len(line) < 200 for line in lines)
    assert "| 1 | 1.0000 |" in text


def test_log_loss_axes_label_every_tick_in_full() -> None:
    assert log_ticks(0.03, 0.9) == [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    s = study("random")
    add(s, {"layers": 1}, [0.9], histories=[history(2, 0.04)])
    add(s, {"layers": 3}, [0.9], histories=[history(2, 0.6)])
    fig = learning_curves_figure("layers", learning_curves_info(finished_trials(s), "layers"))
    labels = fig.layout.yaxis.ticktext
    assert fig.layout.yaxis.type == "log" and "0.5" in labels and "0.05" in labels
    assert len(set(labels)) == len(labels)


def test_a_parameter_with_one_value_gets_no_curves_panel() -> None:
    s = study("random")
    for layers in (1, 3):
        add(s, {"layers": layers, "epochs": 5}, [0.9], histories=[history(2, 1.0)])
    assert "curves-layers" in study_figures(s, ["layers", "epochs"])
    assert "curves-epochs" not in study_figures(s, ["layers", "epochs"])
