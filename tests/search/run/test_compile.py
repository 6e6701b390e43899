"""The CPU's compiled Adadelta update: switched on where a worker's share of the study repays it."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from search import app
from search.run import plan
from search.run.plan import plan_compile
from search.run.progress import Progress
from search.spec import StudySpec
from trainer import optim


@pytest.mark.parametrize(
    ("asked", "cpu", "work", "compiled"),
    [
        ("auto", True, 1e9, False),  # one baseline run: the compile would not pay back
        ("auto", True, 1e11, True),
        ("auto", False, 1e13, False),  # GPUs replay CUDA graphs instead
        ("on", True, 1.0, True),
        ("on", False, 1.0, False),
        ("off", True, 1e13, False),
    ],
)
def test_compiling_is_planned_where_it_pays_back(asked: str, cpu: bool, work: float, compiled: bool) -> None:
    on, note = plan_compile(asked, cpu, work)
    assert on is compiled and (note is not None) is compiled
    if note:
        assert note.startswith("note: ") and "--compile off" in note


def test_a_network_of_the_grid_counts_once_at_its_longest_epochs() -> None:
    grid = StudySpec(kind="grid")
    # 27 groups x 18 networks (nll and cross_entropy are one), each at 25 epochs.
    networks = {(layers, units, batch) for layers in (1, 3, 5) for units in (64, 128, 256) for batch in (16, 64, 256)}
    per_image = sum(18 * 25 * _weights(layers, units) / batch for layers, units, batch in networks)
    assert grid.parameter_steps(256 * 1000, 2187) == pytest.approx(per_image * 256 * 1000)
    assert grid.parameter_steps(256 * 1000, 81) == pytest.approx(per_image * 256 * 1000 * 81 / 2187)
    assert StudySpec(kind="grid", seeds=3).parameter_steps(256, 2187) == 3 * grid.parameter_steps(256, 2187)
    tpe = StudySpec(kind="tpe")
    assert tpe.parameter_steps(1600, 10) == 10 * 14 * 25 * _weights(1, 128)  # the baseline: 14 epochs of batch 64


def _weights(layers: int, units: int) -> int:
    widths = [784] + [units] * layers + [10]
    return sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))


def test_a_worker_that_cannot_compile_says_so_and_trains_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optim, "_use_compiled", False)

    def broken() -> Callable[..., None]:
        raise RuntimeError("no C++ compiler found\nmore")

    monkeypatch.setattr(optim, "_compiled_adadelta", broken)
    notes: list[str] = []
    plan.compile_update(notes.append)
    assert not optim._use_compiled
    assert notes == [
        "the Adadelta update could not be compiled (RuntimeError: no C++ compiler found); training with the eager one"
    ]
    stream = io.StringIO()
    Progress("grid", 3, stream=stream)({"type": "note", "worker": 1, "text": notes[0]})
    assert stream.getvalue().startswith("note: worker 1: the Adadelta update could not be compiled")


@pytest.mark.slow  # torch.compile takes 5-35 s on the 2-core CPU
def test_compile_on_runs_a_study_with_the_compiled_update(
    make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(optim, "_use_compiled", False)
    spec = make_spec("oat", trials=2, compile="on")
    assert app.run_study(spec, []) == 0
    assert optim._use_compiled and "adadelta" in optim._compiled
    assert "each worker compiles the Adadelta update first" in capsys.readouterr().err


def test_a_small_study_is_not_compiled(make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optim, "_use_compiled", False)
    assert app.run_study(make_spec("oat", trials=2), []) == 0
    assert not optim._use_compiled


@pytest.mark.parametrize(
    ("asked", "paybacks", "worth"),
    [
        ("auto", 5.6, "a worker's share of this study repays that about 6 times over"),
        ("auto", 1.2, "a worker's share of this study about repays that"),
        ("on", 0.01, "a worker's share of this study is too short to repay that"),
    ],
)
def test_the_compile_note_says_in_words_whether_it_pays(asked: str, paybacks: float, worth: str) -> None:
    compiled, note = plan_compile(asked, True, paybacks * optim.COMPILE_PAYBACK_ELEMENT_STEPS)
    assert compiled and note == (
        f"note: each worker compiles the Adadelta update first (5-35 s), then trains faster; {worth}; "
        "--compile off skips it"
    )


def test_compile_is_checked_where_it_enters() -> None:
    with pytest.raises(ValueError, match="compile must be one of auto, on, off, but got compile='yes'"):
        StudySpec(kind="grid", compile="yes")


def test_a_compile_that_fails_names_its_innermost_cause() -> None:
    class BackendCompilerFailed(Exception):
        def __init__(self, inner: Exception) -> None:
            super().__init__("backend='inductor' raised:\n")
            self.inner_exception = inner

    cause = plan.compile_cause(BackendCompilerFailed(FileNotFoundError("No such file or directory: 'g++'")))
    assert cause == "FileNotFoundError: No such file or directory: 'g++'"
