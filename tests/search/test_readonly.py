"""Reading commands on storages the user may only read: an immutable SQLite file or folder, a SELECT-only role.

The tests run as root, for whom file modes do not apply; ``chattr +i`` (immutable) and a
PostgreSQL role without write grants refuse writes to root too.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.search.conftest import fast_flags, run_search
from tests.search.test_cli import one_line_error
from tests.search.test_dashboard import Dashboard, start_dashboard, stop

READERS = [
    ["list"],
    ["best", "--study-name", "mnist-random"],
    ["export", "--study-name", "mnist-random", "--out", "{out}/t.csv"],
    ["report", "--study-name", "mnist-random", "--out", "{out}/r.html"],
]


def read_everything(storage: str, cwd: Path, out: Path) -> None:
    """list, best, export, report and the dashboard all answer from ``storage``."""
    for args in READERS:
        proc = run_search(*[a.format(out=out) for a in args], "--storage", storage, cwd=cwd)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert "mnist-random" in run_search("list", "--storage", storage, cwd=cwd).stdout
    assert (out / "t.csv").read_text().count("\n") == 3 and (out / "r.html").stat().st_size > 0
    proc, port, _ = start_dashboard(cwd, "--storage", storage)
    try:
        status, _, body = Dashboard(proc, port).get("/api/studies")
        assert status == 200 and b"mnist-random" in body
    finally:
        err = stop(proc)
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def sqlite_study(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("study")
    proc = run_search("random", "--trials", "2", *fast_flags(mnist_dir), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder


def _frozen(folder: Path, name: str, what: str) -> Iterator[Path]:
    """``folder``, with its file ``name`` (``what`` = "file") or all of it ("folder") immutable meanwhile."""
    targets = [folder / name] if what == "file" else [*folder.iterdir(), folder]
    done = subprocess.run(["chattr", "+i", *map(str, targets)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", *map(str, targets)], check=True)


@pytest.fixture(params=["file", "folder"])
def immutable(request: pytest.FixtureRequest, sqlite_study: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the study whose database file (or whole folder) no one, root included, may change."""
    folder = tmp_path / "archive"
    shutil.copytree(sqlite_study, folder)
    yield from _frozen(folder, "studies.db", request.param)


def test_immutable_sqlite_is_read_and_refused_for_writing(immutable: Path, tmp_path: Path, mnist_dir: Path) -> None:
    before = sorted(p.name for p in immutable.iterdir())
    storage = f"sqlite:///{immutable / 'studies.db'}"
    out = tmp_path / "out"
    read_everything(storage, tmp_path, out)
    proc = run_search("random", "--trials", "3", "--storage", storage, *fast_flags(mnist_dir), cwd=tmp_path)
    one_line_error(proc, "read-only")
    assert sorted(p.name for p in immutable.iterdir()) == before


@pytest.mark.postgres
def test_postgresql_without_tables_gets_none_from_readers(own_pg_database: tuple[str, str], tmp_path: Path) -> None:
    import psycopg

    _, url = own_pg_database
    proc = run_search("list", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 0 and "no studies" in proc.stderr, proc.stderr
    one_line_error(run_search("best", "--study-name", "x", "--storage", url, cwd=tmp_path), "no study named 'x'")
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_select_only_postgresql_role_reads_and_is_refused_for_writing(
    own_pg_database: tuple[str, str], tmp_path: Path, mnist_dir: Path
) -> None:
    import psycopg

    name, url = own_pg_database
    flags = [*fast_flags(mnist_dir), "--artifacts", str(tmp_path / "artifacts")]
    assert run_search("random", "--trials", "2", "--storage", url, *flags, cwd=tmp_path).returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'GRANT USAGE ON SCHEMA public TO "{name}_ro"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{name}_ro"')
    reader = f"postgresql://{name}_ro@127.0.0.1:5432/{name}"
    read_everything(reader, tmp_path, tmp_path / "out")
    proc = run_search("random", "--trials", "3", "--storage", reader, *flags, cwd=tmp_path)
    one_line_error(proc, "read-only")


@pytest.fixture(params=["file", "folder"])
def immutable_log(request: pytest.FixtureRequest, tmp_path: Path, mnist_dir: Path) -> Iterator[Path]:
    """A Journal study whose log (or whole folder) no one, root included, may change."""
    folder = tmp_path / "archive"
    folder.mkdir()
    proc = run_search("random", "--trials", "2", "--storage", "journal:studies.log", *fast_flags(mnist_dir), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    yield from _frozen(folder, "studies.log", request.param)


def test_immutable_journal_is_read_and_refused_for_writing(
    immutable_log: Path, tmp_path: Path, mnist_dir: Path
) -> None:
    before = sorted(p.name for p in immutable_log.iterdir())
    storage = f"journal:{immutable_log / 'studies.log'}"
    read_everything(storage, tmp_path, tmp_path / "out")
    proc = run_search("random", "--trials", "3", "--storage", storage, *fast_flags(mnist_dir), cwd=tmp_path)
    one_line_error(proc, "read-only")
    assert sorted(p.name for p in immutable_log.iterdir()) == before
