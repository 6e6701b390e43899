"""Helpers for search tests: tiny studies on fixture data in a temporary SQLite file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest

from search.spec import StudySpec
from tests.conftest import REPO

# Small enough that a trial takes well under a second on two cores.
FAST = {"validation": 100, "limit_train": 200, "limit_test": 100, "device": "cpu", "download": False}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


# The file storages whose locking, workers, crashes and Ctrl-C get the same tests.
FILE_STORAGES = ("sqlite", "journal")


def file_url(kind: str, folder: Path) -> str:
    """A new storage of ``kind`` (one of ``FILE_STORAGES``) in ``folder``; artifacts land beside it."""
    return f"sqlite:///{folder / 'studies.db'}" if kind == "sqlite" else f"journal:{folder / 'studies.log'}"


@pytest.fixture(params=FILE_STORAGES)
def file_storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return file_url(request.param, tmp_path)


def readable(url: str) -> str | optuna.storages.BaseStorage:
    """What ``optuna.load_study`` takes for ``url``: Optuna parses database URLs, not ``journal:``."""
    from search.storage import open_reader

    return open_reader(url) if url.startswith("journal:") else url  # type: ignore[return-value]


@pytest.fixture
def make_spec(mnist_dir: Path, sqlite_url: str, tmp_path: Path) -> Callable[..., StudySpec]:
    def make(kind: str, **changes: object) -> StudySpec:
        values = {"kind": kind, "storage": sqlite_url, "data_dir": str(mnist_dir), **FAST, **changes}
        if not str(values["storage"]).startswith(("sqlite", "journal")):
            # Beside a SQLite file or log they land in the test's folder already; elsewhere the default is ./artifacts.
            values.setdefault("artifacts", str(tmp_path / "artifacts"))
        return StudySpec(**values)  # type: ignore[arg-type]

    return make


def run_search(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )


def start_search(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """``python -m search ARGS`` in the background, its output captured."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def fast_flags(mnist_dir: Path) -> list[str]:
    return [
        "--data-dir",
        str(mnist_dir),
        "--validation",
        "100",
        "--limit-train",
        "200",
        "--limit-test",
        "100",
        "--device",
        "cpu",
        "--no-download",
    ]


def states(storage: str, name: str) -> dict[str, int]:
    study = optuna.load_study(study_name=name, storage=readable(storage))
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def param_sets(storage: str, name: str, states: tuple[str, ...] = ("COMPLETE", "PRUNED")) -> list[tuple]:
    study = optuna.load_study(study_name=name, storage=readable(storage))
    return [tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False) if t.state.name in states]


@contextlib.contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database named ``PREFIX_<random>`` (other test runs share the server), dropped after."""
    from tests.search.test_scale import PG_ADMIN, _pg_answers

    reason = _pg_answers()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_pg_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database (name, URL) and a role ``NAME_ro`` with no grants yet; both dropped after."""
    import psycopg

    from tests.search.test_scale import PG_ADMIN

    role = None
    try:
        with fresh_pg_database("mnist_hpo_harden") as name:
            role = f"{name}_ro"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE ROLE "{role}" LOGIN')
            yield name, f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        if role is not None:  # after its database is gone, so no grant holds it
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')
