"""Storage URLs: passwords masked in every form, drivers named, and reading commands that create nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import optuna
import pytest

from search.app import resume_command
from search.storage import StorageError, file_lock, mask_arg, mask_url, open_reader, open_storage
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


@pytest.mark.parametrize("version", ["v99.0.0", "v3.0.0.a"])
def test_a_writer_refused_by_the_schema_leaves_no_file(tmp_path: Path, version: str) -> None:
    db = tmp_path / "studies.db"
    optuna.create_study(study_name="other", storage=f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (version,))
    conn.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StorageError, match="optuna"):
        open_storage(f"sqlite:///{db}", 60)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_lock_file_removed_by_its_holder_still_lets_one_process_in_at_a_time(tmp_path: Path) -> None:
    """A process that waited on a removed lock file takes the new one, never entering beside its holder."""
    db, inside, order = tmp_path / "studies.db", threading.Lock(), []

    def enter(name: str, hold: float, remove: bool = False) -> None:
        with file_lock(db):
            assert inside.acquire(blocking=False), f"{name} entered beside another holder"
            order.append(name)
            time.sleep(hold)
            if remove:
                Path(f"{db}.lock").unlink()
            inside.release()

    first = threading.Thread(target=enter, args=("first", 0.5, True))
    first.start()
    time.sleep(0.1)
    waiting = threading.Thread(target=enter, args=("waiting", 0.1))
    waiting.start()  # opens the file the first removes, and waits on it
    time.sleep(0.2)
    first.join()
    later = threading.Thread(target=enter, args=("later", 0.5))  # makes a new file
    later.start()
    waiting.join()
    later.join()
    assert sorted(order) == ["first", "later", "waiting"]
