"""A factorial study (``grid --vary``): a grid over some parameters with the others at the oat baseline,
its varied set part of its identity, its points of one shape one group, and its interaction figure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from search import records
from search.analysis.figures import interaction_figure, interaction_info
from search.run.study import StudyError, prepare
from search.space import point_key
from search.spec import StudySpec, oat_baseline
from tests.search.conftest import run_search
from tests.search.test_cli import one_line_error
from trainer.errors import UsageError

DEPTH_QUESTION = ("hidden_layers", "learning_rate", "hidden_units", "activation")


def test_the_depth_question_is_81_points_in_9_groups_at_the_baseline() -> None:
    spec = StudySpec("grid", vary=DEPTH_QUESTION)
    points = spec.points()
    assert spec.vary == ("hidden_layers", "hidden_units", "activation", "learning_rate")  # the space's order
    assert len(points) == len({tuple(sorted(p.items())) for p in points}) == 81
    base = oat_baseline(None)
    for p in points:
        assert (p["loss"], p["epochs"], p["batch_size"]) == (base.loss, 14, 64)
    # each shape's learning rates and activations are one group, and its points follow each other
    keys = [point_key(p) for p in points]
    assert sorted(Counter(keys).values()) == [9] * 9
    assert sum(1 for a, b in zip(keys, keys[1:], strict=False) if a != b) == 8
    assert spec.networks() == 81


def test_other_parameters_stay_at_the_baseline_under_an_epoch_cap() -> None:
    points = StudySpec("grid", vary=("hidden_layers", "learning_rate"), max_epochs=2).points()
    assert len(points) == 9
    assert {p["epochs"] for p in points} == {2} and {p["hidden_units"] for p in points} == {128}
    assert {(p["hidden_layers"], p["learning_rate"]) for p in points} == {
        (d, lr) for d in (1, 3, 5) for lr in (0.1, 1.0, 10.0)
    }


def test_the_varied_set_in_any_order_is_one_identity() -> None:
    a = StudySpec("grid", vary=("learning_rate", "hidden_layers")).identity()
    b = StudySpec("grid", vary=("hidden_layers", "learning_rate")).identity()
    assert a == b and a["vary"] == "hidden_layers,learning_rate"
    assert StudySpec("grid").identity()["vary"] == ""


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"vary": ("hidden_layers", "depth")}, "'depth'"),
        ({"vary": ("l1",)}, "'l1'"),  # only with --regularization
        ({"vary": ("hidden_layers", "hidden_layers")}, "once"),
        ({"kind": "oat", "vary": ("hidden_layers",)}, "grid"),
    ],
)
def test_bad_vary_is_refused(changes: dict, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        StudySpec(**{"kind": "grid", **changes})
    assert StudySpec("grid", vary=("l1",), regularization=True).vary == ("l1",)


def test_an_unknown_name_is_one_line_listing_the_accepted_ones(tmp_path: Path) -> None:
    proc = run_search("grid", "--vary", "hidden_layers,depth", cwd=tmp_path)
    one_line_error(proc, "'depth'", "hidden_layers, hidden_units, activation, loss, learning_rate, epochs, batch_size")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("other", [(), ("hidden_layers", "hidden_units")])
def test_a_rerun_with_another_varied_set_is_refused(make_spec: Callable[..., StudySpec], other: tuple) -> None:
    prepare(make_spec("grid", vary=("hidden_layers", "learning_rate")))
    with pytest.raises(StudyError, match="vary='hidden_layers,learning_rate'"):
        prepare(make_spec("grid", vary=other))
    prepare(make_spec("grid", vary=("learning_rate", "hidden_layers")))  # the same set


def test_a_full_grid_made_before_vary_existed_is_not_resumed_as_a_factorial(
    make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = StudySpec.identity
    with monkeypatch.context() as older:  # the identity an older version wrote: no vary key
        older.setattr(StudySpec, "identity", lambda self: {k: v for k, v in identity(self).items() if k != "vary"})
        study = prepare(make_spec("grid"))
    assert "vary" not in study.user_attrs
    with pytest.raises(StudyError, match="vary=''"):
        prepare(make_spec("grid", vary=("hidden_layers", "learning_rate")))
    assert prepare(make_spec("grid")).user_attrs["vary"] == ""


def _factorial(values: dict[tuple[int, float], list[float]]) -> optuna.Study:
    """An in-memory factorial of depth x learning rate whose trials hold the given seed values."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "grid")
    study.set_user_attr("vary", "hidden_layers,learning_rate")
    dists = {
        "hidden_layers": optuna.distributions.IntDistribution(1, 5),
        "learning_rate": optuna.distributions.FloatDistribution(0.01, 10.0, log=True),
    }
    for (depth, lr), seeds in values.items():
        trial = optuna.trial.create_trial(
            params={"hidden_layers": depth, "learning_rate": lr},
            distributions=dists,
            value=sum(seeds) / len(seeds),
            user_attrs={"seed_values": seeds},
            system_attrs={records.HISTORIES_ATTR: [[{"epoch": 1, "val_accuracy": v}] for v in seeds]},
        )
        study.add_trial(trial)
    return study


def test_interaction_info_gives_each_learning_rate_its_line_against_depth() -> None:
    study = _factorial(
        {
            (1, 0.1): [0.90, 0.92],
            (3, 0.1): [0.80, 0.82],
            (1, 1.0): [0.95, 0.97],
            (3, 1.0): [0.96, 0.98],
        }
    )
    x_param, lines = interaction_info(study)
    assert x_param == "hidden_layers"
    assert [(line.by, line.label, line.x) for line in lines] == [
        ("learning_rate", "0.1", ["1", "3"]),
        ("learning_rate", "1", ["1", "3"]),
    ]
    assert lines[0].means == pytest.approx([0.91, 0.81]) and lines[1].means == pytest.approx([0.96, 0.97])
    # two seeds 0.02 apart: the t interval's half width is t(0.975, 1) * 0.01
    assert lines[0].half_widths == pytest.approx([12.7062 * 0.01] * 2, rel=1e-4)
    fig = interaction_figure(x_param, lines)
    assert [(trace.name, trace.legendgroup) for trace in fig.data] == [("0.1", "learning_rate"), ("1", "learning_rate")]


def test_a_study_without_a_varied_set_has_no_interaction_figure() -> None:
    study = _factorial({(1, 0.1): [0.9], (3, 0.1): [0.8]})
    study.set_user_attr("vary", "")
    assert interaction_info(study) == ("", [])
