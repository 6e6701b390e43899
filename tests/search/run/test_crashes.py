"""kill -9 at the exact moment between two writes: nothing lost, nothing run twice, no name made unusable.

Each test runs ``python -m search`` in a child whose Optuna (or file) calls are wrapped to
SIGKILL the child right after a chosen write, then runs the command again as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from search.records import INTERRUPTED
from search.run.worker import _points_handed_out
from tests.conftest import REPO
from tests.search.conftest import FILE_STORAGES, fast_flags, file_url, param_sets, readable, run_search, states
from tests.search.test_cli import one_line_error

# Wraps ``optuna.Study.<METHOD>`` so that the child dies by SIGKILL right after its Nth call returns.
KILL_AFTER_CALL = """
import os, signal, optuna
real = getattr(optuna.Study, METHOD)
calls = [0]
def wrapped(self, *args, **kwargs):
    out = real(self, *args, **kwargs)
    calls[0] += 1
    if calls[0] == NTH:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(optuna.Study, METHOD, wrapped)
"""

# Wraps open() so that a write to a file whose name holds TARGET writes half its data, then SIGKILLs.
KILL_MID_WRITE = """
import builtins, io, os, signal
real_open = io.open
class Dying:
    def __init__(self, f): self.f = f
    def __getattr__(self, name): return getattr(self.f, name)
    def __enter__(self): return self
    def __exit__(self, *exc): return self.f.__exit__(*exc)
    def __iter__(self): return iter(self.f)
    def write(self, data):
        self.f.write(data[: len(data) // 2]); self.f.flush(); os.fsync(self.f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
def dying_open(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    name = os.path.basename(os.readlink(f"/proc/self/fd/{f.fileno()}"))
    return Dying(f) if ("w" in mode and TARGET in name) else f
io.open = builtins.open = dying_open
"""


def run_killed(hook: str, args: list[str], cwd: Path, **names: object) -> subprocess.CompletedProcess[str]:
    """``python -m search ARGS`` with ``hook`` run first (its NAMES bound); asserts that it died by SIGKILL."""
    bindings = "".join(f"{k} = {v!r}\n" for k, v in names.items())
    code = bindings + textwrap.dedent(hook) + f"from search.__main__ import main\nmain({args!r})\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc


@pytest.mark.parametrize("kind", FILE_STORAGES)
def test_grid_killed_between_enqueueing_points_runs_each_point_once(tmp_path: Path, mnist_dir: Path, kind: str) -> None:
    storage = file_url(kind, tmp_path)
    # One worker: the hook is installed in this process, and only a single worker claims here.
    args = [
        "grid",
        "--trials",
        "12",
        "--heartbeat",
        "1",
        "--workers",
        "1",
        "--storage",
        storage,
        *fast_flags(mnist_dir),
    ]
    # The first claim enqueues the nine points of one shared run; die after the first is written.
    run_killed(KILL_AFTER_CALL, args, tmp_path, METHOD="enqueue_trial", NTH=1)
    proc = run_search(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    done = param_sets(storage, "mnist-grid")
    assert len(done) == 12 and len(set(done)) == 12
    assert states(storage, "mnist-grid").get("RUNNING", 0) == 0


@pytest.mark.parametrize("kind", FILE_STORAGES)
def test_study_killed_while_writing_its_identity_can_be_used_again(tmp_path: Path, mnist_dir: Path, kind: str) -> None:
    storage = file_url(kind, tmp_path)
    args = ["tpe", "--trials", "1", "--study-name", "x", "--storage", storage, *fast_flags(mnist_dir)]
    run_killed(KILL_AFTER_CALL, args, tmp_path, METHOD="set_user_attr", NTH=1)
    proc = run_search(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="x", storage=readable(storage))
    assert study.user_attrs["kind"] == "tpe" and study.user_attrs["regularization"] is False
    assert len(study.trials) == 1


def test_old_study_with_only_its_kind_written_is_completed(tmp_path: Path, mnist_dir: Path) -> None:
    """A study cut short by the version that wrote ``kind`` first is completed, not refused."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="x", storage=storage, direction="maximize").set_user_attr("kind", "grid")
    proc = run_search("grid", "--trials", "1", "--study-name", "x", *fast_flags(mnist_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="x", storage=storage)
    assert study.user_attrs["seed"] == 1 and study.user_attrs["regularization"] is False


def test_old_grid_study_with_trials_is_not_resumed_in_another_order(tmp_path: Path, mnist_dir: Path) -> None:
    """A grid study of the version before groups handed out points in another order: refused, left as it is."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    old = optuna.create_study(study_name="x", storage=storage, direction="maximize")
    for key, value in (("regularization", False), ("seed", 1), ("kind", "grid")):
        old.set_user_attr(key, value)
    old.enqueue_trial({"hidden_layers": 1}, user_attrs={"point": 0})
    proc = run_search("grid", "--trials", "2", "--study-name", "x", *fast_flags(mnist_dir), cwd=tmp_path)
    one_line_error(proc, "made by an older version")
    study = optuna.load_study(study_name="x", storage=storage)
    assert "grid_order" not in study.user_attrs and len(study.trials) == 1


def test_report_and_export_killed_mid_write_leave_the_old_file_whole(tmp_path: Path, mnist_dir: Path) -> None:
    assert run_search("random", "--trials", "2", *fast_flags(mnist_dir), cwd=tmp_path).returncode == 0
    for command, out in (("report", "r.html"), ("export", "t.csv")):
        args = [command, "--study-name", "mnist-random", "--out", out]
        assert run_search(*args, cwd=tmp_path).returncode == 0
        before = (tmp_path / out).read_bytes()
        run_killed(KILL_MID_WRITE, args, tmp_path, TARGET=out)
        assert (tmp_path / out).read_bytes() == before, command
    (tmp_path / "a-file").write_text("")
    proc = run_search("export", "--study-name", "mnist-random", "--out", "a-file/t.csv", cwd=tmp_path)
    one_line_error(proc, "cannot write a-file/t.csv")


def test_a_point_whose_requeue_was_cut_short_is_handed_out_again(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'studies.db'}", direction="maximize")
    for point in range(6):
        study.enqueue_trial({"x": point}, user_attrs={"point": point})
    outcomes = [
        ("COMPLETE", None),  # done
        ("FAIL", INTERRUPTED),  # interrupted, its requeue cut short: owed
        ("FAIL", "diverged"),  # a real failure: done
        ("FAIL", INTERRUPTED),  # interrupted and re-queued below: not owed
        ("FAIL", ""),  # failed silently (its worker died), the retry callback cut short: owed
        ("RUNNING", None),  # running: not owed
    ]
    for number, (state, reason) in enumerate(outcomes):
        trial = study.ask()
        if reason:
            trial.set_user_attr("fail_reason", reason)
        if state != "RUNNING":
            study.tell(trial, 1.0 if state == "COMPLETE" else None, state=optuna.trial.TrialState[state])
        assert trial.number == number
    study.enqueue_trial({"x": 3}, user_attrs={"point": 3})
    assert _points_handed_out(study) == ([1, 4], 6)
