"""Journal storage (``journal:PATH``): every command reads and writes it, bad paths are one line, a cut
append is repaired, and heartbeats live beside the log."""

from __future__ import annotations

import datetime
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import app
from search.spec import StudySpec
from search.storage import StorageError, open_reader, open_store
from tests.search.conftest import FAST, fast_flags, run_search
from tests.search.test_cli import one_line_error
from tests.search.test_dashboard import Dashboard, start_dashboard, stop


@pytest.fixture(scope="module")
def journal_study(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StudySpec:
    """A three-trial grid study on a log in a folder of its own (artifacts beside it); read, never written."""
    folder = tmp_path_factory.mktemp("logs")
    storage = f"journal:{folder / 'g.log'}"
    spec = StudySpec("grid", trials=3, max_epochs=2, storage=storage, study_name="g", data_dir=str(mnist_dir), **FAST)
    assert app.run_study(spec, []) == 0
    return spec


def _folder(spec: StudySpec) -> Path:
    return Path(spec.storage.removeprefix("journal:")).parent


def test_a_study_on_a_log_keeps_its_artifacts_and_locks_beside_it(journal_study: StudySpec) -> None:
    folder = _folder(journal_study)
    assert sorted(p.name for p in folder.iterdir()) == [
        "g-artifacts",
        "g.log",
        "g.log.heartbeats",
        "g.log.study-lock",
        "g.log.write-lock",
    ]
    assert list((folder / "g-artifacts").iterdir())  # the best model
    assert not list((folder / "g.log.heartbeats").iterdir())  # a finished trial's heartbeat file goes with it
    study = optuna.load_study(study_name="g", storage=open_reader(journal_study.storage))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["best"],
        ["effects"],
        ["export", "--out", "x.csv"],
        ["report", "--out", "x.html"],
    ],
)
def test_every_reader_reads_a_log_and_writes_nothing_beside_it(
    journal_study: StudySpec, tmp_path: Path, args: list[str]
) -> None:
    folder = _folder(journal_study)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    proc = run_search(*args, "--storage", journal_study.storage, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() or "wrote" in proc.stderr, proc.stderr
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def test_the_dashboard_serves_a_log(journal_study: StudySpec, tmp_path: Path) -> None:
    proc, port, banner = start_dashboard(tmp_path, "--storage", journal_study.storage)
    try:
        status, _, body = Dashboard(proc, port).get("/api/studies")
        assert status == 200 and b'"g"' in body, body
    finally:
        err = stop(proc)
    assert "Traceback" not in err and "journal:" in banner, err


def test_bench_build_reads_a_study_from_a_log(journal_study: StudySpec, tmp_path: Path) -> None:
    args = ["bench", "build", "--from-study", "g", "--storage", journal_study.storage, "--out", "t.npz"]
    proc = run_search(*args, cwd=tmp_path)
    assert proc.returncode == 0 and "3 points" in proc.stdout, proc.stderr
    assert (tmp_path / "t.npz").is_file()


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda folder: folder / "missing" / "x.log", "folder"),
        (lambda folder: (folder / "d").mkdir() or folder / "d", "is a folder"),
        (lambda folder: (folder / "x.log").write_text("hello\n") and folder / "x.log", "not an Optuna journal"),
        (lambda folder: (folder / "x.log").write_bytes(b"\x00\x01\xff" * 100) and folder / "x.log", "not an Optuna"),
        (lambda folder: sqlite3.connect(folder / "x.db").execute("CREATE TABLE t (x)") and folder / "x.db", "journal"),
    ],
    ids=["missing-folder", "directory", "text", "binary", "sqlite-file"],
)
@pytest.mark.parametrize("command", [["oat"], ["list"]])
def test_a_bad_log_path_is_one_line_and_creates_nothing(
    tmp_path: Path, mnist_dir: Path, make: Callable[[Path], Path], said: str, command: list[str]
) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    path = make(folder)
    before = {p: p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}
    flags = fast_flags(mnist_dir) if command == ["oat"] else []
    proc = run_search(*command, "--storage", f"journal:{path}", *flags, cwd=folder)
    if command == ["list"] and said == "folder":  # a reader finds nothing to read there, and says so
        assert proc.stderr.startswith("no studies in") and str(path) in proc.stderr, proc.stderr
    else:
        one_line_error(proc, said, str(path))
    assert {p: p.read_bytes() if p.is_file() else None for p in folder.rglob("*")} == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_log_is_one_line(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("")
    log.chmod(0)
    one_line_error(run_search("list", "--storage", f"journal:{log}", cwd=tmp_path), "cannot read", str(log))


def test_a_relative_log_path_is_read_from_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("journal:rel.log")
    optuna.create_study(study_name="r", storage=store.storage)
    assert (tmp_path / "rel.log").is_file() and store.artifact_dir == Path("rel-artifacts")
    proc = run_search("list", "--storage", "journal:rel.log", cwd=tmp_path)
    assert proc.returncode == 0 and "r" in proc.stdout, proc.stderr


def test_an_append_cut_short_is_cut_off_before_the_next_one(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'x.log'}"
    study = optuna.create_study(study_name="s", storage=open_store(url).storage)
    study.enqueue_trial({"x": 1})
    whole = (tmp_path / "x.log").read_bytes()
    with open(tmp_path / "x.log", "ab") as f:
        f.write(b'{"op_code":4,"worker_id":"w","study_id":0,"datet')  # a full disk stopped this line
    study = optuna.load_study(study_name="s", storage=open_store(url).storage)
    assert (tmp_path / "x.log").read_bytes() == whole
    study.enqueue_trial({"x": 2})
    assert len(optuna.load_study(study_name="s", storage=open_reader(url)).trials) == 2


def test_a_damaged_line_inside_a_log_is_one_storage_error(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'x.log'}"
    study = optuna.create_study(study_name="s", storage=open_store(url).storage)
    study.enqueue_trial({"x": 1})
    with open(tmp_path / "x.log", "ab") as f:
        f.write(b"not json\n")
    with pytest.raises(optuna.exceptions.StorageInternalError, match="cannot read journal"):
        study.enqueue_trial({"x": 2})
    with pytest.raises(StorageError, match="cannot read storage journal:"):
        open_reader(url)
    one_line_error(run_search("list", "--storage", url, cwd=tmp_path), "cannot read storage journal:", "x.log")


def test_heartbeats_mark_silent_and_stale_trials_of_a_log(tmp_path: Path) -> None:
    storage = open_store(f"journal:{tmp_path / 'x.log'}", heartbeat=1).storage
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    beating, silent, done = study.ask(), study.ask(), study.ask()
    for trial in (beating, done):
        storage.record_heartbeat(trial._trial_id)
    study.tell(done, 1.0)
    assert not (tmp_path / "x.log.heartbeats" / str(done._trial_id)).exists()
    assert storage._get_stale_trial_ids(study._study_id) == []
    time.sleep(2.5)  # past the grace period, twice the heartbeat
    assert storage._get_stale_trial_ids(study._study_id) == [beating._trial_id]
    later = datetime.datetime.now()
    assert storage.silent_trial_ids(study._study_id, later) == [silent._trial_id]
    assert storage.silent_trial_ids(study._study_id, later - datetime.timedelta(seconds=60)) == []
