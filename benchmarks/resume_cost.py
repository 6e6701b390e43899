"""What an interrupt costs a grid: one interrupted and resumed run against one uninterrupted, side by side.

Usage:
    python benchmarks/resume_cost.py --data-dir ../shared/mnist [--trials 108] [--workers 2] [--reps 1]

Each repetition runs ``search grid --trials N --limit-train 1000 --max-epochs 2`` twice in fresh
SQLite files: once to its end, and once sent SIGINT (Ctrl-C) as soon as its first group has ended
an epoch (a running trial holds an intermediate value), then run again to its end. It prints both
wall times (the interrupted one is the sum of its two commands) and their ratio, and checks that
every point has the uninterrupted run's value and test accuracy to the last bit. Exits 1 when a
value differs or the ratio is above 1.5 (issue 27, J).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search import records

LIMIT = 1.5


def _command(storage: str, data_dir: str, trials: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "search", "grid", "--trials", str(trials), "--workers", str(workers),
        "--limit-train", "1000", "--validation", "200", "--limit-test", "200", "--max-epochs", "2",
        "--compile", "off", "--threads", "1", "--storage", storage, "--data-dir", data_dir, "--no-download",
    ]  # fmt: skip


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def uninterrupted(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, env=ENV)
    return time.monotonic() - started


def _an_epoch_ended(storage: str) -> bool:
    try:
        study = optuna.load_study(study_name="mnist-grid", storage=storage)
    except KeyError:
        return False
    return any(t.intermediate_values for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def interrupted(command: list[str], storage: str) -> float:
    """Ctrl-C once the first group has ended an epoch, then the same command again; their wall times summed."""
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    while proc.poll() is None and not _an_epoch_ended(storage):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    if proc.returncode != 130:
        raise SystemExit(f"the interrupted run exited {proc.returncode}, not 130: {err[-300:]}")
    subprocess.run(command, check=True, capture_output=True, env=ENV)
    return time.monotonic() - started


def values(storage: str) -> dict[int, tuple[float | None, float | None]]:
    study = optuna.load_study(study_name="mnist-grid", storage=storage)
    finished = [t for t in study.trials if records.is_finished(t.state)]
    return {records.point(t): (t.value, t.user_attrs.get("test_accuracy")) for t in finished}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="MNIST folder (required)")
    parser.add_argument("--trials", type=int, default=108, help="points of the grid (default 108: four groups)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions (default 1)")
    args = parser.parse_args()
    failed = False
    for rep in range(args.reps):
        folder = Path(tempfile.mkdtemp())
        clean, cut = (f"sqlite:///{folder / name}" for name in ("clean.db", "cut.db"))
        # Alternate which one runs first, so that a change of the machine's load falls on both.
        if rep % 2 == 0:
            whole = uninterrupted(_command(clean, args.data_dir, args.trials, args.workers))
            resumed = interrupted(_command(cut, args.data_dir, args.trials, args.workers), cut)
        else:
            resumed = interrupted(_command(cut, args.data_dir, args.trials, args.workers), cut)
            whole = uninterrupted(_command(clean, args.data_dir, args.trials, args.workers))
        reference, got = values(clean), values(cut)
        same = reference == got and len(got) == args.trials
        ratio = resumed / whole
        failed |= not same or ratio > LIMIT
        print(
            f"repetition {rep + 1}: uninterrupted {whole:.1f} s, interrupted and resumed {resumed:.1f} s, "
            f"ratio {ratio:.2f}; {len(got)} points, "
            + (
                "every value equal to the last bit"
                if same
                else f"values differ: {len(set(got.items()) ^ set(reference.items()))}"
            ),
            flush=True,
        )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
