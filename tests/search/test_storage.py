"""Storage URLs: passwords masked in every form, drivers named, and reading commands that create nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from search.app import resume_command
from search.storage import mask_arg, mask_url, open_reader
from tests.search.conftest import run_search
from tests.search.test_cli import one_line_error

SECRET = "s3cr"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:s3cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:s3cr/t@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:s3cr#t@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:s3cr?t@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:s3/c#r?t@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=s3cret", "postgresql://u@h/db?password=***"),
        ("postgresql://u@h/db?sslmode=require&password=s3cret", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql+psycopg://u:s3cret@h/db", "postgresql+psycopg://u:***@h/db"),
        ("sqlite:///studies.db", "sqlite:///studies.db"),
        ("not a url u:s3cret@h", "not a url u:s3cret@h"),
        ("weird://u:s3cret@", "weird://u:***@"),
    ],
)
def test_mask_url_hides_every_password_form(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "argv",
    [
        ["tpe", "--storage", "postgresql://u:s3cr/t#x?@h/db"],
        ["tpe", "--storage=postgresql://u:s3cr/t#x?@h/db"],
        ["tpe", "--stor=postgresql://u@h/db?password=s3cret"],
        ["tpe", "--storage", "postgresql://u@h/db?password=s3cret", "--trials", "3"],
    ],
)
def test_resume_line_masks_the_storage_in_every_argv_form(argv: list[str]) -> None:
    line = resume_command(argv)
    assert SECRET not in line
    assert "***" in line and line.startswith("python -m search tpe ")
    assert mask_arg("--trials") == "--trials"


@pytest.mark.parametrize(
    ("url", "driver"),
    [("postgresql+psycopg2://u:s3cret@127.0.0.1/db", "psycopg2"), ("postgresql+asyncpg://u:s3cret@127.0.0.1/db", "")],
)
def test_missing_or_async_driver_is_one_line(tmp_path: Path, url: str, driver: str) -> None:
    proc = run_search("list", "--storage", url, cwd=tmp_path)
    one_line_error(proc, driver, "postgresql://USER")
    assert "ModuleNotFoundError" not in proc.stderr and SECRET not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["best", "--study-name", "x"],
        ["export", "--study-name", "x", "--out", "x.csv"],
        ["report", "--study-name", "x", "--out", "x.html"],
        ["dashboard", "--port", "0"],
    ],
)
def test_reading_a_mistyped_sqlite_path_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    proc = run_search(*args, "--storage", "sqlite:///typo.db", cwd=tmp_path, timeout=120)
    assert "no stud" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_open_reader_on_a_database_without_optuna_tables_creates_none(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE mine (x INTEGER)")
    assert open_reader(f"sqlite:///{db}") is None
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("mine",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_open_reader_reads_without_a_lock_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="there", storage=url)
    before = sorted(p.name for p in tmp_path.iterdir())
    storage = open_reader(url)
    assert storage is not None and optuna.get_all_study_names(storage) == ["there"]
    storage.engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
