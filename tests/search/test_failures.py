"""A storage that fails mid-run (disk full, PostgreSQL gone): one line, the resume line, nothing left behind."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.search.conftest import fast_flags, file_url, run_search, start_search, states
from tests.search.test_scale import PG_ADMIN


def finished(storage: str, name: str) -> int:
    try:
        counts = states(storage, name)
    except KeyError:  # not created yet
        return 0
    return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)


def assert_one_error_then_resume(
    proc: subprocess.CompletedProcess[str] | subprocess.Popen, err: str, cause: str
) -> None:
    """Nonzero exit, no traceback, one ``error:`` line naming ``cause``, then the resume line."""
    assert proc.returncode not in (0, None), err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and cause in errors[0], err
    assert "resume with: python -m search random" in err, err


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 300 KB tmpfs: room for a study and a few trials (needs root, as the tests run)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)  # this process may still hold the file open


@pytest.mark.parametrize(
    ("kind", "cause"), [("sqlite", "database or disk is full"), ("journal", "No space left on device")]
)
def test_disk_full_on_a_file_storage_is_one_line_and_the_study_resumes(
    small_disk: Path, tmp_path: Path, mnist_dir: Path, kind: str, cause: str
) -> None:
    storage = file_url(kind, small_disk)
    flags = [
        "--storage",
        storage,
        "--artifacts",
        str(tmp_path / "artifacts"),
        "--heartbeat",
        "1",
        *fast_flags(mnist_dir),
    ]
    proc = run_search("random", "--trials", "500", *flags, cwd=tmp_path)
    assert_one_error_then_resume(proc, proc.stderr, cause)
    running = states(storage, "mnist-random").get("RUNNING", 0)
    assert running == 0 or "left RUNNING" in proc.stderr, proc.stderr
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    target = finished(storage, "mnist-random") + 2
    proc = run_search("random", "--trials", str(target), *flags, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert finished(storage, "mnist-random") == target
    assert states(storage, "mnist-random").get("RUNNING", 0) == 0


@pytest.mark.postgres
def test_postgresql_gone_mid_run_is_one_line_and_the_study_resumes(
    own_pg_database: tuple[str, str], tmp_path: Path, mnist_dir: Path
) -> None:
    import psycopg

    name, url = own_pg_database
    flags = ["--storage", url, "--heartbeat", "1", "--workers", "2", *fast_flags(mnist_dir)]
    proc = start_search("random", "--trials", "500", *flags, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while finished(url, "mnist-random") < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.5)
    # The server stops answering for this database: every session ends, no new one is let in.
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    _, err = proc.communicate(timeout=300)
    assert_one_error_then_resume(proc, err, "connect")
    # Progress (the study line, trial lines, the workers' start-up, group and epoch lines) aside: the error
    # line and the resume line.
    progress = re.compile(r"^(\[|study |note:|starting \d+ worker processes|worker \d+: )")
    other = [line for line in err.splitlines() if not progress.match(line)]
    assert len(other) == 2, err
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    target = finished(url, "mnist-random") + 2
    again = run_search("random", "--trials", str(target), *flags, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert finished(url, "mnist-random") == target
    assert states(url, "mnist-random").get("RUNNING", 0) == 0
