"""How fast samplers are replayed on the tabular benchmark, and how much of it is the samplers' own time.

Usage:
    python benchmarks/replay_speed.py [--table FILE] [--repeats 50] [--trials 100] [--processes 2]

Replays grid, random, TPE and GP (``--samplers``) on the table and prints the wall time of
all repeats, each sampler's wall time, and its ask time per trial (the sampler's decision:
``study.ask`` and the suggestions), the part no table lookup can remove.
"""

from __future__ import annotations

import argparse
import time

from search.bench.cli import SHIPPED
from search.bench.replay import replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(SHIPPED), help="table file (default: the shipped one)")
    parser.add_argument("--samplers", default="grid,random,tpe,gp", help="comma-separated samplers")
    parser.add_argument("--repeats", type=int, default=50, help="repeats per sampler")
    parser.add_argument("--trials", type=int, default=100, help="trials per repeat")
    parser.add_argument("--processes", type=int, default=2, help="processes the repeats are spread over")
    args = parser.parse_args()
    total = 0.0
    print(f"{'sampler':<8} {'wall s':>8} {'ask ms/trial':>13} {'ask share':>10}")
    for name in args.samplers.split(","):
        started = time.perf_counter()
        runs = replay(args.table, [name], args.trials, args.repeats, processes=args.processes)[name]
        wall = time.perf_counter() - started
        total += wall
        ask = sum(r.ask_seconds for r in runs)
        trials = sum(len(r.trials) for r in runs)
        # The ask time is summed over processes; the share is of the CPU time the processes had.
        print(f"{name:<8} {wall:>8.1f} {1000 * ask / trials:>13.2f} {ask / (wall * args.processes):>10.0%}")
    count = len(args.samplers.split(","))
    print(f"all: {total:.1f} s for {args.repeats} repeats x {args.trials} trials x {count} samplers")


if __name__ == "__main__":
    main()
