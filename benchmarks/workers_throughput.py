"""Trials per hour with one worker using every core against N workers sharing them, side by side.

Usage:
    python benchmarks/workers_throughput.py --data-dir ../shared/mnist [--workers 2] [--trials 8]

Both runs execute the same grid points (same seed, same --trials) in fresh SQLite studies on
the CPU, each point in a run of its own (``--separate-runs``: trials small enough to spread over
the workers); one worker gets all cores' threads, each of N workers gets cores / N threads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from search import app
from search.spec import StudySpec


def run(workers: int, args: argparse.Namespace) -> float:
    storage = f"sqlite:///{tempfile.mkdtemp()}/studies.db"
    spec = StudySpec(
        kind="grid",
        trials=args.trials,
        workers=workers,
        storage=storage,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        device="cpu",
        share_runs=False,
    )
    started = time.perf_counter()
    if code := app.run_study(spec, []):
        raise SystemExit(code)  # interrupted (Ctrl-C) or failed: stop the benchmark
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR, else ./data)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="workers of the parallel run")
    parser.add_argument("--trials", type=int, default=12, help="grid points run by each")
    parser.add_argument("--limit-train", type=int, default=30000, help="training images per trial")
    args = parser.parse_args()
    one = run(1, args)
    many = run(args.workers, args)
    rate = lambda seconds: args.trials * 3600 / seconds  # noqa: E731
    print(f"1 worker x {os.cpu_count()} threads: {one:7.1f} s, {rate(one):7.0f} trials/hour")
    print(f"{args.workers} workers sharing them: {many:7.1f} s, {rate(many):7.0f} trials/hour")
    print(f"ratio (workers / one):     {one / many:7.2f}x")


if __name__ == "__main__":
    main()
