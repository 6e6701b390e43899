"""Where ``report`` writes: one file inside ``reports/``, whatever the study's name."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search import app
from search.analysis.report import report_path

NAMES = ["../../../../tmp/escaped/here", "/etc/passwd", "a/b", "a_b", "..", ".hidden", " ", "é" * 300, "a\nb"]


def test_a_plain_name_keeps_its_file_name() -> None:
    assert report_path("mnist-grid") == "reports/mnist-grid.html"
    assert report_path("run_2.v1") == "reports/run_2.v1.html"


@pytest.mark.parametrize("name", NAMES)
def test_any_name_is_one_file_directly_inside_reports(name: str) -> None:
    path = Path(report_path(name))
    assert path.parent == Path("reports") and path.suffix == ".html"
    assert path.name == path.name.strip() and not path.name.startswith(".") and len(path.name) <= 100
    assert set(path.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def test_two_names_never_share_a_report() -> None:
    paths = [report_path(name) for name in [*NAMES, "mnist-grid", "a_b-0"]]
    assert len(set(paths)) == len(paths)


def test_a_study_name_cannot_write_a_report_outside_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    name = "../../escaped/here"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    work = tmp_path / "one" / "two"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert app.report(url, name, None) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".html"]
    assert [p.relative_to(work) for p in written] == [Path(report_path(name))]
    assert not (tmp_path / "escaped").exists()
