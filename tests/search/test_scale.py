"""Many workers, one study: exact budgets, no repeated grid point, crash recovery; SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest

from search import app
from search.spec import StudySpec
from tests.conftest import REPO, write_mnist
from tests.search.conftest import fast_flags, fresh_pg_database, param_sets, start_search, states

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_answers() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001 - any failure means no usable server
        return f"no PostgreSQL server answers at 127.0.0.1:5432 ({type(e).__name__}); .ci/run starts one"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with fresh_pg_database("mnist_hpo_test") as name:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return request.getfixturevalue("pg_url")


def finished(storage: str, name: str) -> int:
    counts = states(storage, name)
    return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)


@pytest.mark.postgres
def test_three_local_workers_end_with_exactly_the_budget(make_spec: Callable[..., StudySpec], pg_url: str) -> None:
    spec = make_spec("tpe", trials=9, workers=3, storage=pg_url)
    assert app.run_study(spec, []) == 0
    counts = states(pg_url, spec.name)
    assert finished(pg_url, spec.name) == 9
    assert "RUNNING" not in counts and "WAITING" not in counts


def test_two_commands_share_one_budget(storage_url: str, mnist_dir: Path, tmp_path: Path) -> None:
    args = ["random", "--trials", "8", "--storage", storage_url, *fast_flags(mnist_dir)]
    procs = [start_search(*args, cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    counts = states(storage_url, "mnist-random")
    assert finished(storage_url, "mnist-random") == 8
    assert "RUNNING" not in counts


def test_grid_split_over_workers_repeats_no_point(make_spec: Callable[..., StudySpec], storage_url: str) -> None:
    spec = make_spec("grid", trials=6, workers=3, storage=storage_url)
    assert app.run_study(spec, []) == 0
    points = param_sets(storage_url, spec.name, states=("COMPLETE", "PRUNED", "FAIL"))
    assert len(points) == len(set(points))
    assert finished(storage_url, spec.name) == 6
    assert "RUNNING" not in states(storage_url, spec.name)


def test_sqlite_with_two_workers_reaches_the_budget(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("random", trials=6, workers=2)
    assert app.run_study(spec, []) == 0
    counts = states(spec.storage, spec.name)
    assert finished(spec.storage, spec.name) == 6
    assert "RUNNING" not in counts and "FAIL" not in counts


@pytest.fixture(scope="module")
def slow_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough images that the baseline trial lasts several seconds: time to kill it mid-run."""
    return write_mnist(tmp_path_factory.mktemp("slow_mnist") / "MNIST" / "raw", n_train=20_000, n_test=200).parents[1]


def _wait_for_running(storage: str, name: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if states(storage, name).get("RUNNING"):
                return
        except KeyError:  # the study is not created yet
            pass
        time.sleep(0.2)
    raise AssertionError("no trial started")


def oat_command(storage_url: str, data: Path) -> tuple[list[str], dict[str, str]]:
    """An oat study of two trials whose first (the baseline) lasts several seconds, in one process."""
    args = [
        "oat",
        "--trials",
        "2",
        "--workers",
        "1",
        "--storage",
        storage_url,
        "--data-dir",
        str(data),
        "--validation",
        "100",
        "--limit-test",
        "100",
        "--device",
        "cpu",
        "--no-download",
    ]
    return args, {**os.environ, "PYTHONPATH": str(REPO)}


def test_killed_worker_trial_is_failed_and_rerun(storage_url: str, slow_mnist: Path, tmp_path: Path) -> None:
    args, env = oat_command(storage_url, slow_mnist)
    victim = subprocess.Popen(
        [sys.executable, "-m", "search", *args, "--heartbeat", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_running(storage_url, "mnist-oat", victim)
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # The baseline and the next point (another learning rate) train as one shared run.
    assert states(storage_url, "mnist-oat").get("RUNNING") == 2
    proc = subprocess.run(
        [sys.executable, "-m", "search", *args, "--heartbeat", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="mnist-oat", storage=storage_url)
    assert [t.state.name for t in study.trials[:2]] == ["FAIL", "FAIL"]
    assert finished(storage_url, "mnist-oat") == 2
    assert "RUNNING" not in states(storage_url, "mnist-oat")
    for killed in study.trials[:2]:
        rerun = [t for t in study.trials if t.state.name == "COMPLETE" and t.params == killed.params]
        assert len(rerun) == 1  # each killed point ran again, once


def test_interrupted_run_leaves_nothing_running_and_resumes(storage_url: str, slow_mnist: Path, tmp_path: Path) -> None:
    args, env = oat_command(storage_url, slow_mnist)
    proc = start_search(*args, cwd=tmp_path)
    _wait_for_running(storage_url, "mnist-oat", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with: python -m search oat" in err
    assert "Traceback" not in err
    # What this run did, apart from the study's state; interrupted points are not failures and run again.
    assert "this run: 0 trials finished, 2 stopped while running (not failures: their points are queued" in err
    assert "interrupted: study 'mnist-oat': 0 of 2 trials finished, 2 left (2 queued to run first), 0 failed" in err
    counts = states(storage_url, "mnist-oat")
    assert "RUNNING" not in counts and counts.get("FAIL") == 2 and counts.get("WAITING") == 2
    listed = subprocess.run(
        [sys.executable, "-m", "search", "list", "--storage", storage_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "0 finished, 2 queued to run, 0 failed" in listed.stdout, listed.stderr
    again = subprocess.run(
        [sys.executable, "-m", "search", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert "this run: 2 trials finished, 0 failed" in again.stderr
    assert "done: study 'mnist-oat': 2 of 2 trials finished, 0 failed" in again.stderr
    assert finished(storage_url, "mnist-oat") == 2
    assert len(set(param_sets(storage_url, "mnist-oat"))) == 2


def _open_after(barrier: object, url: str) -> None:
    from search.storage import open_storage

    barrier.wait()  # type: ignore[attr-defined]
    open_storage(url)


def test_workers_creating_a_new_sqlite_database_at_once_all_open_it(tmp_path: Path) -> None:
    """Regression: two commands starting on a new file raced to create its tables ("already exists")."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    barrier = context.Barrier(6)
    procs = [context.Process(target=_open_after, args=(barrier, url)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert optuna.study.get_all_study_names(url) == []
