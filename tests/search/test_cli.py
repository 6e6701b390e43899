"""``python -m search`` as a user meets it: help, the acceptance commands, and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import REPO
from tests.search.conftest import fast_flags, param_sets, run_search, states


def one_line_error(proc: object, *quoted: str) -> None:
    err = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode not in (0, None), err  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for text in quoted:
        assert text in err, err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_help_lists_commands_and_defaults() -> None:
    proc = run_search("--help")
    assert proc.returncode == 0
    for command in ("grid", "random", "tpe", "oat", "dashboard", "report", "best", "list", "export"):
        assert command in proc.stdout
    proc = run_search("tpe", "--help")
    assert "default: mnist-tpe" in proc.stdout and "default: sqlite:///studies.db" in proc.stdout
    assert "default: median" in proc.stdout and "--workers" in proc.stdout
    grid = " ".join(run_search("grid", "--help").stdout.split())
    assert "--threads" in grid and "one per core" in grid
    assert "(default: None)" not in grid and "(default: False)" not in grid


def test_tpe_then_optuna_lists_four_trials(tmp_path: Path, mnist_dir: Path) -> None:
    proc = run_search("tpe", "--trials", "4", *fast_flags(mnist_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "studies.db").exists()
    assert "[4/4]" in proc.stderr
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    assert len(param_sets(storage, "mnist-tpe")) == 4


def test_grid_three_then_six(tmp_path: Path, mnist_dir: Path) -> None:
    for trials in ("3", "6"):
        proc = run_search("grid", "--trials", trials, *fast_flags(mnist_dir), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    points = param_sets(f"sqlite:///{tmp_path / 'studies.db'}", "mnist-grid")
    assert len(points) == len(set(points)) == 6


@pytest.mark.parametrize(
    ("args", "quoted"),
    [
        (["tpe", "--trials", "0"], "'0'"),
        (["tpe", "--trials", "-3"], "'-3'"),
        (["random", "--workers", "0"], "'0'"),
        (["sweep"], "'sweep'"),
        (["tpe", "--pruner", "always"], "'always'"),
        (["tpe", "--storage", "redis://localhost/0"], "redis://localhost/0"),
        (["tpe", "--device", "tpu"], "'tpu'"),
        (["tpe", "--validation", "5000"], "validation=5000"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, mnist_dir: Path, args: list[str], quoted: str) -> None:
    flags = ["--data-dir", str(mnist_dir), "--no-download"] if "--validation" in args else []
    proc = run_search(*args, *flags, cwd=tmp_path)
    one_line_error(proc, quoted)
    assert not (tmp_path / "studies.db").exists()


def test_unreachable_postgresql_fails_within_seconds(tmp_path: Path, mnist_dir: Path) -> None:
    started = time.monotonic()
    proc = run_search(
        "tpe",
        "--trials",
        "1",
        "--storage",
        "postgresql://postgres:secret@127.0.0.1:1/nowhere",
        *fast_flags(mnist_dir),
        cwd=tmp_path,
    )
    one_line_error(proc, "postgresql://postgres:***@127.0.0.1:1/nowhere")
    assert "secret" not in proc.stderr
    assert time.monotonic() - started < 30


def test_missing_data_stores_nothing(tmp_path: Path) -> None:
    proc = run_search("tpe", "--trials", "1", "--data-dir", str(tmp_path / "none"), "--no-download", cwd=tmp_path)
    one_line_error(proc, "train-images-idx3-ubyte")
    assert not (tmp_path / "studies.db").exists()


def test_corrupt_database_is_refused_and_left_as_it_was(tmp_path: Path, mnist_dir: Path) -> None:
    db = tmp_path / "studies.db"
    db.write_bytes(b"this is not a database" * 100)
    before = digest(db)
    proc = run_search("tpe", "--trials", "1", *fast_flags(mnist_dir), cwd=tmp_path)
    one_line_error(proc, "studies.db")
    assert digest(db) == before


def test_study_with_another_direction_is_refused(tmp_path: Path, mnist_dir: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="mnist-tpe", storage=storage, direction="minimize")
    proc = run_search("tpe", "--trials", "1", *fast_flags(mnist_dir), cwd=tmp_path)
    one_line_error(proc, "mnist-tpe", "minimize")
    assert states(storage, "mnist-tpe") == {}


def test_study_of_another_kind_is_refused(tmp_path: Path, mnist_dir: Path) -> None:
    proc = run_search("tpe", "--trials", "1", "--study-name", "mine", *fast_flags(mnist_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_search("grid", "--trials", "1", "--study-name", "mine", *fast_flags(mnist_dir), cwd=tmp_path)
    one_line_error(proc, "'mine'", "tpe")


def test_old_schema_asks_for_an_upgrade_and_is_not_migrated(tmp_path: Path, mnist_dir: Path) -> None:
    db = tmp_path / "studies.db"
    optuna.create_study(study_name="old", storage=f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'v3.0.0.a'")
    before = digest(db)
    proc = run_search("tpe", "--trials", "1", *fast_flags(mnist_dir), cwd=tmp_path)
    one_line_error(proc, "optuna storage upgrade")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("v3.0.0.a",)
    assert digest(db) == before


def test_unknown_study_names_the_existing_ones(tmp_path: Path) -> None:
    optuna.create_study(study_name="there", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    proc = run_search("best", "--study-name", "missing", cwd=tmp_path)
    one_line_error(proc, "'missing'", "there")


def test_list_best_export(tmp_path: Path, mnist_dir: Path) -> None:
    assert run_search("random", "--trials", "2", *fast_flags(mnist_dir), cwd=tmp_path).returncode == 0
    proc = run_search("list", cwd=tmp_path)
    assert "mnist-random" in proc.stdout and "2 finished, 0 failed" in proc.stdout
    proc = run_search("best", "--study-name", "mnist-random", cwd=tmp_path)
    assert proc.returncode == 0 and "validation accuracy" in proc.stdout
    first = proc.stdout.splitlines()[0]
    assert re.fullmatch(r"trial \d+: validation accuracy \d\.\d{4}, test accuracy \d\.\d{4}", first), first
    proc = run_search("export", "--study-name", "mnist-random", "--out", "t.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("number,state,val_accuracy")


def test_mps_is_seen_by_its_control_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.app import mps_running

    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path))
    assert not mps_running()
    os.mkfifo(tmp_path / "control")
    assert mps_running()


def test_help_imports_no_torch() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "search", "--help"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "plotly", "optuna_dashboard"}


def _one_study(tmp_path: Path, names: tuple[str, ...] = ("only",)) -> str:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    for name in names:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    return storage


def test_best_and_export_pick_the_only_study_and_export_writes_to_stdout(tmp_path: Path) -> None:
    storage = _one_study(tmp_path)
    proc = run_search("best", "--storage", storage, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("trial "), proc.stderr
    proc = run_search("export", "--storage", storage, "--study-name", "only", "--out", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("number,state,") and len(proc.stdout.splitlines()) == 3
    assert not (tmp_path / "-").exists()


def test_without_a_name_two_studies_are_named_in_one_line(tmp_path: Path) -> None:
    storage = _one_study(tmp_path, ("first", "second"))
    for command in ("best", "export", "effects", "report"):
        extra = ["--out", "-"] if command == "export" else []
        one_line_error(run_search(command, "--storage", storage, *extra, cwd=tmp_path), "first, second")


def test_best_prints_the_trainer_command_that_gives_the_trials_numbers(tmp_path: Path, mnist_dir: Path) -> None:
    """Every stored value is reproducible: ``best`` names the ``python -m trainer`` flags (its seeds and the
    study's data sizes included) whose run gives the trial's seeds' accuracies to the last bit."""
    flags = fast_flags(mnist_dir)
    proc = run_search("grid", "--trials", "3", "--seeds", "2", "--max-epochs", "2", "--workers", "1", *flags,
                      cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = run_search("best", "--study-name", "mnist-grid", cwd=tmp_path)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("  retrain it: "))
    argv = shlex.split(line.removeprefix("  retrain it: "))
    assert argv[:3] == ["python", "-m", "trainer"] and argv[-2:] == ["--data-dir", "DIR"]
    assert "--seeds" in argv and "--limit-train" in argv and "--validation" in argv
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, *argv[1:-1], str(mnist_dir), "--no-download", "--json"],
                         capture_output=True, text=True, env=env, check=True)  # fmt: skip
    retrained = [r["val_accuracy"] for r in json.loads(run.stdout)["runs"]]
    study = optuna.load_study(study_name="mnist-grid", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    best = study.best_trial
    assert retrained == best.user_attrs["seed_values"]
