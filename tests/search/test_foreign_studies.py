"""Studies this service did not make (several objectives, minimized, infinite values) read in one line."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from search import app
from search.run.study import StudyError


@pytest.fixture
def storage(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    two = optuna.create_study(study_name="two", storage=url, directions=["maximize", "minimize"])
    two.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
    low = optuna.create_study(study_name="low", storage=url, direction="minimize")
    low.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return url


def test_list_names_every_study_beside_a_two_objective_one(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert app.list_studies(storage) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["two", "low"]
    assert "2 objectives" in out[0] and "minimizes" in out[1]


@pytest.mark.parametrize("name", ["two", "low"])
@pytest.mark.parametrize("command", ["best", "effects", "report", "export"])
def test_reading_a_foreign_study_is_refused_in_one_line(storage: str, tmp_path: Path, name: str, command: str) -> None:
    calls = {
        "best": lambda: app.best(storage, name),
        "effects": lambda: app.effects(storage, name, "json", 0),
        "report": lambda: app.report(storage, name, str(tmp_path / "r.html")),
        "export": lambda: app.export(storage, name, str(tmp_path / "t.csv")),
    }
    with pytest.raises(StudyError, match="maximize one objective") as refused:
        calls[command]()
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "t.csv").exists()


def test_non_finite_numbers_become_null_with_a_note() -> None:
    data, replaced = app._strict_json({"a": [1.0, float("inf")], "b": {"c": float("nan")}, "d": "x"})
    assert data == {"a": [1.0, None], "b": {"c": None}, "d": "x"} and replaced == 2
    json.dumps(data, allow_nan=False)
