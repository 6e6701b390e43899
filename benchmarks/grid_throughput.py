"""Trials per hour over a sample of the reference grid: every point alone against shared runs, side by side.

Usage:
    python benchmarks/grid_throughput.py --data-dir ../shared/mnist [--device cuda] [--groups 4]
        [--limit-train N] [--workers N] [--shared-only]

The sample is the points of the first ``--groups`` shared runs of the seeded 2,187-point
reference grid: three learning rates x three epoch counts of one network and batch size,
with the mse loss (nine points) or with both nll and cross_entropy (eighteen). It runs as a
grid study twice in fresh SQLite databases: with ``--separate-runs`` (a run per point) and
as shared runs (one stacked run of three networks each).
Prints the baseline 14-epoch trial's wall time (on CUDA with its steps launched one by one
and replayed as CUDA graphs, side by side), both studies' wall time and trials per hour,
their ratio, the whole grid's projected time, and on CUDA the GPU's utilisation sampled by
nvidia-smi while the studies ran. ``--shared-only`` leaves out the study of separate runs.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import tempfile
import threading
import time

import optuna
import torch

from search import app
from search.space import SEVEN, grid_points
from search.spec import StudySpec
from trainer import Splits, TrainConfig, load_mnist, resolve_device, split, train
from trainer.loop import run_key

GRID_POINTS = 3**7


class Utilisation:
    """Samples the GPU's utilisation (percent) with nvidia-smi every half second, in a thread."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "--id=0"]
        while not self._stop.wait(0.5):
            try:
                self.samples.append(float(subprocess.run(query, capture_output=True, text=True).stdout.split()[0]))
            except (OSError, ValueError, IndexError):
                return

    def __enter__(self) -> Utilisation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mean(self) -> str:
        return f"{statistics.mean(self.samples):.0f}%" if self.samples else "n/a"


def sample_size(groups: int, seed: int) -> int:
    """How many points the grid's first ``groups`` shared runs hold."""
    keys = [run_key(TrainConfig().replace(**p)) for p in grid_points(SEVEN, seed)]
    return sum(len(list(run)) for _, run in itertools.islice(itertools.groupby(keys), groups))


def run_grid(args: argparse.Namespace, share: bool) -> tuple[float, int]:
    spec = StudySpec(
        kind="grid",
        trials=sample_size(args.groups, seed=1),
        storage=f"sqlite:///{tempfile.mkdtemp()}/studies.db",
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        device=args.device,
        workers=args.workers,
        share_runs=share,
    )
    started = time.perf_counter()
    if code := app.run_study(spec, []):
        raise SystemExit(code)  # interrupted (Ctrl-C) or failed: stop the benchmark
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    return wall, sum(t.state.is_finished() for t in study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR, else ./data)")
    parser.add_argument("--device", default="auto", help="device of the trials")
    parser.add_argument("--groups", type=int, default=4, help="shared runs (of 9 or 18 points) in the sample")
    parser.add_argument("--limit-train", type=int, default=None, help="training images per trial (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each study")
    parser.add_argument("--shared-only", action="store_true", help="run only the study of shared runs")
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.device = str(device)
    splits = split(load_mnist(args.data_dir, device), limit_train=args.limit_train)
    baselines = {graphs: baseline_seconds(splits, args.device, graphs) for graphs in (False, True)}
    rows, walls = [], {}
    for share in (True,) if args.shared_only else (False, True):
        with Utilisation() if device.type == "cuda" else _Nothing() as use:
            wall, n = run_grid(args, share)
        walls[share] = wall
        rate = n * 3600 / wall
        name = "shared" if share else "alone"
        rows.append(f"| {name} | {n} | {wall:.1f} | {rate:.0f} | {GRID_POINTS / rate:.2f} | {use.mean()} |")
    print(f"device {device}, {torch.get_num_threads()} threads, {args.workers} worker(s), torch {torch.__version__}")
    if device.type == "cuda":
        print(f"baseline 14-epoch trial, steps launched one by one: {baselines[False]:.2f} s")
        print(f"baseline 14-epoch trial, steps replayed as CUDA graphs: {baselines[True]:.2f} s")
        print(f"CUDA graphs: {baselines[False] / baselines[True]:.2f}x faster")
    else:
        print(f"baseline 14-epoch trial: {baselines[True]:.2f} s")
    print("| runs | trials | wall (s) | trials/hour | whole grid (h) | GPU utilisation |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if False in walls:
        print(f"shared runs / alone: {walls[False] / walls[True]:.2f}x the trials per hour")


def baseline_seconds(splits: Splits, device: str, cuda_graphs: bool) -> float:
    """Wall time of the baseline 14-epoch trial, after a one-epoch warm-up."""
    train(TrainConfig(epochs=1, device=device), splits, cuda_graphs=cuda_graphs)
    started = time.perf_counter()
    train(TrainConfig(device=device), splits, cuda_graphs=cuda_graphs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


class _Nothing:
    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def mean(self) -> str:
        return "n/a"


if __name__ == "__main__":
    main()
