"""A grid study with one worker killed (SIGKILL) once a checkpoint exists, then the same command rerun.

Usage:
    python benchmarks/kill_rerun.py --data-dir ../shared/mnist [--reps 3] [--storage postgresql://...]
    python benchmarks/kill_rerun.py --data-dir ../shared/mnist --command-kills 4 [--reps 3]

Each repetition runs ``search grid --trials 30 --workers 4 --heartbeat 2 --max-epochs 4`` on tiny
data in a fresh study (a new SQLite file, or a new study name on ``--storage``), kills one worker
process as soon as the study's first checkpoint is saved, waits for the command to end, runs it
again, and checks that the finished trials are exactly points 0-29, each once, and that nothing
is WAITING or RUNNING. Prints one line per repetition; exits 1 when one fails.

With ``--command-kills K``, each repetition is instead the sequence of issue 27 (A): ``search grid
--trials 27 --workers 1 --heartbeat 1 --seeds 2 --max-epochs 2`` killed as a whole (SIGKILL of the
command) K times, each time once its output says ``epoch 1/2``, then run again to its end; the
study must hold points 0-26 finished once each, nothing WAITING or RUNNING, and the rerun must say
``done`` and exit 0. A kill is never the point's fault, so no number of them may use up its retries.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna

from search import records

TRIALS = 30


def _command(storage: str, name: str, artifacts: Path, data_dir: str) -> list[str]:
    return [
        sys.executable, "-m", "search", "grid", "--study-name", name, "--trials", str(TRIALS), "--workers", "4",
        "--heartbeat", "2", "--max-epochs", "4", "--limit-train", "300", "--validation", "200",
        "--limit-test", "200", "--compile", "off", "--storage", storage, "--data-dir", data_dir,
        "--artifacts", str(artifacts), "--no-download",
    ]  # fmt: skip


def _workers(pid: int) -> list[int]:
    """The spawned worker processes of the command ``pid``."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def repetition(storage: str, name: str, folder: Path, data_dir: str) -> str | None:
    """Run, kill, rerun; None when the study holds points 0-29 once each, else what is wrong."""
    artifacts = folder / f"{name}-artifacts"
    command = _command(storage, name, artifacts, data_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline, killed = time.monotonic() + 600, None
    while proc.poll() is None and killed is None and time.monotonic() < deadline:
        if any(artifacts.glob("checkpoint-*.pt")) and (workers := _workers(proc.pid)):
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    proc.communicate(timeout=900)
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if rerun.returncode != 0:
        return f"the rerun exited {rerun.returncode}: {rerun.stderr.strip()[-300:]}"
    study = optuna.load_study(study_name=name, storage=storage)
    done = Counter(records.point(t) for t in study.trials if records.is_finished(t.state))
    open_ = [t.number for t in study.trials if t.state.name in ("WAITING", "RUNNING")]
    if killed is None:
        return "no worker was killed (no checkpoint was seen)"
    if sorted(done) != list(range(TRIALS)) or set(done.values()) != {1} or open_:
        return f"finished points {dict(sorted(done.items()))}, waiting or running trials {open_}"
    return None


KILLED_TRIALS = 27


def _killed_command(storage: str, name: str, artifacts: Path, data_dir: str) -> list[str]:
    return [
        sys.executable, "-m", "search", "grid", "--study-name", name, "--trials", str(KILLED_TRIALS),
        "--workers", "1", "--heartbeat", "1", "--seeds", "2", "--max-epochs", "2", "--limit-train", "500",
        "--validation", "200", "--limit-test", "200", "--compile", "off", "--threads", "1",
        "--storage", storage, "--data-dir", data_dir, "--artifacts", str(artifacts), "--no-download",
    ]  # fmt: skip


def command_kills(storage: str, name: str, folder: Path, data_dir: str, kills: int) -> str | None:
    """Kill the whole command ``kills`` times once an epoch has ended, then rerun it; None when all is well."""
    command = _killed_command(storage, name, folder / f"{name}-artifacts", data_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for kill in range(kills):
        out = folder / f"run-{kill + 1}.txt"
        with open(out, "w") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
            deadline = time.monotonic() + 600
            while proc.poll() is None and "epoch 1/2" not in out.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            if proc.poll() is not None:
                return f"run {kill + 1} ended (exit {proc.returncode}) before an epoch: {out.read_text()[-300:]}"
            proc.kill()
            proc.wait()
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if rerun.returncode != 0 or "done:" not in rerun.stderr:
        return f"the rerun exited {rerun.returncode}: {rerun.stderr.strip()[-300:]}"
    study = optuna.load_study(study_name=name, storage=storage)
    done = Counter(records.point(t) for t in study.trials if records.is_finished(t.state))
    open_ = [t.number for t in study.trials if t.state.name in ("WAITING", "RUNNING")]
    if sorted(done) != list(range(KILLED_TRIALS)) or set(done.values()) != {1} or open_:
        return f"finished points {dict(sorted(done.items()))}, waiting or running trials {open_}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="MNIST folder (required)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--storage", help="a storage URL for every repetition (default: a new SQLite file each)")
    parser.add_argument(
        "--command-kills", type=int, default=0, help="kill the whole command this often, then rerun (default 0: off)"
    )
    args = parser.parse_args()
    trials = KILLED_TRIALS if args.command_kills else TRIALS
    failed = 0
    for rep in range(args.reps):
        folder = Path(tempfile.mkdtemp())
        storage = args.storage or f"sqlite:///{folder / 'studies.db'}"
        name = f"kill-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        if args.command_kills:
            problem = command_kills(storage, name, folder, args.data_dir, args.command_kills)
        else:
            problem = repetition(storage, name, folder, args.data_dir)
        failed += problem is not None
        verdict = problem or f"points 0-{trials - 1} finished once each, nothing waiting or running"
        print(f"repetition {rep + 1}: {verdict} ({time.monotonic() - started:.0f} s)", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
