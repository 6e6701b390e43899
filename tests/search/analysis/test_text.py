"""The one place the project writes values, counts, the best trial, and the report built on them."""

from __future__ import annotations

from optuna.trial import TrialState

from search.analysis.report import render_report
from search.analysis.summary import summarize
from search.analysis.text import best_line, format_accuracy, format_params
from tests.search.analysis.conftest import add, grid_study, study
from tests.search.analysis.test_effects import additive


def test_accuracies_are_written_to_four_places() -> None:
    assert format_accuracy(0.9251999855041504) == "0.9252"
    assert format_accuracy(None) == "-"


def test_params_and_counts() -> None:
    assert format_params({"learning_rate": 1.1367330868956231, "activation": "relu"}) == (
        "learning_rate=1.14 activation=relu"
    )
    s = study("tpe")
    add(s, {"layers": 1}, [0.9])
    add(s, {"layers": 1}, state=TrialState.FAIL)
    assert summarize(s).outcomes.describe(by_state=True) == "1 complete, 1 failed"
    assert summarize(study("tpe")).outcomes.describe(by_state=True) == "no trials"


def test_best_line_rounds_and_names_the_test_accuracy_when_stored() -> None:
    s = study("tpe")
    add(s, {"layers": 1}, [0.9251999855041504], test_accuracy=0.91630001)
    best = summarize(s).best
    assert best is not None and best_line(best) == "trial 0: validation accuracy 0.9252, test accuracy 0.9163"


def test_report_holds_the_effects_section_and_figures() -> None:
    page = render_report(grid_study(additive, seeds=2, noise=0.002), ["layers", "activation", "rate"])
    assert "Which choices matter" in page and "python -m search effects --study-name" in page
    assert 'data-graph="effects-values"' in page and 'data-graph="effects-importance"' in page
    assert "exact grid ANOVA" in page
