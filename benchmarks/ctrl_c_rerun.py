"""Ctrl-C at an epoch's end, several times, then a rerun: every point once, with an uninterrupted run's values.

Usage:
    python benchmarks/ctrl_c_rerun.py --data-dir ../shared/mnist [--trials 27] [--interrupts 3] [--max-epochs 5]

It runs ``search grid --trials N --workers 1 --max-epochs E`` on all of the data in two fresh
SQLite files: once to its end, and once sent SIGINT to its whole process group (as a terminal's
Ctrl-C is) as soon as it prints an ``epoch i/E`` line, that is at an epoch's end; that run is
started again and interrupted the same way ``--interrupts`` times, then run to its end. Each
interrupted command must exit 130 with the ``interrupted: ... resume with: ...`` line; the rerun
must finish every point once (no point finished twice, none left) with the uninterrupted run's
validation and test accuracies to the last bit. Prints one line per command and exits 1 on any
difference (issue 32).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from search import records

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
EPOCH_LINE = re.compile(r": epoch \d+/\d+ of [^,]+, \d+ networks?, ")  # its end: no "batch i/n"


def _command(storage: str, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "search", "grid", "--trials", str(args.trials), "--workers", "1",
        "--max-epochs", str(args.max_epochs), "--threads", "1", "--storage", storage,
        "--data-dir", args.data_dir, "--no-download",
    ] + (["--limit-train", str(args.limit_train)] if args.limit_train else [])  # fmt: skip


def _finished(storage: str) -> dict[int, list[tuple[float | None, float | None]]]:
    """Each point's finished trials' (validation, test), so that a point finished twice shows."""
    study = optuna.load_study(study_name="mnist-grid", storage=storage)
    found: dict[int, list[tuple[float | None, float | None]]] = {}
    for trial in study.get_trials(deepcopy=False):
        if records.is_finished(trial.state):
            found.setdefault(records.point(trial), []).append((trial.value, trial.user_attrs.get("test_accuracy")))
    return found


def _interrupt_at_an_epoch_end(command: list[str]) -> tuple[int, str, str]:
    """Start the command in its own process group, SIGINT the group at its first epoch line."""
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )
    lines: list[str] = []
    epoch_line = ""
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if EPOCH_LINE.search(line):
            epoch_line = line.strip()
            os.killpg(proc.pid, signal.SIGINT)
            break
    lines.extend(proc.stderr)
    proc.wait()
    return proc.returncode, epoch_line, "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="MNIST folder (required)")
    parser.add_argument("--trials", type=int, default=27, help="points of the grid (default 27)")
    parser.add_argument("--interrupts", type=int, default=3, help="Ctrl-Cs before the last rerun (default 3)")
    parser.add_argument("--max-epochs", type=int, default=5, help="epoch cap (default 5)")
    parser.add_argument("--limit-train", type=int, default=None, help="training images (default: all)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    clean, cut = (f"sqlite:///{folder / name}" for name in ("clean.db", "cut.db"))
    failed = False

    started = time.monotonic()
    subprocess.run(_command(clean, args), check=True, capture_output=True, env=ENV)
    print(f"uninterrupted: {time.monotonic() - started:.0f} s", flush=True)

    for number in range(1, args.interrupts + 1):
        started = time.monotonic()
        code, epoch_line, err = _interrupt_at_an_epoch_end(_command(cut, args))
        last = err.strip().splitlines()[-1] if err.strip() else ""
        ok = code == 130 and last.startswith("interrupted: ") and "resume with: " in last
        failed |= not ok
        done = sum(len(v) for v in _finished(cut).values())
        print(
            f"Ctrl-C {number} at '{epoch_line}': exit {code} after {time.monotonic() - started:.0f} s, "
            f"{done} points finished so far; last line: {last}",
            flush=True,
        )

    started = time.monotonic()
    rerun = subprocess.run(_command(cut, args), capture_output=True, text=True, env=ENV)
    print(f"rerun: exit {rerun.returncode} after {time.monotonic() - started:.0f} s", flush=True)
    reference, got = _finished(clean), _finished(cut)
    twice = sorted(p for p, runs in got.items() if len(runs) > 1)
    missing = sorted(set(reference) - set(got))
    differ = sorted(p for p, runs in got.items() if p in reference and runs[0] != reference[p][0])
    failed |= rerun.returncode != 0 or bool(twice or missing or differ) or len(reference) != args.trials
    print(
        f"{len(got)} of {args.trials} points finished; finished twice: {twice or 'none'}; missing: "
        f"{missing or 'none'}; values unlike the uninterrupted run's: {differ or 'none'}",
        flush=True,
    )
    for point in sorted(reference)[:3]:
        print(f"  point {point}: uninterrupted {reference[point][0]}, interrupted and rerun {got.get(point)}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
