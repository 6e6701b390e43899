"""Trials per hour over a sample of the reference grid: groups against three-network stacks and every point alone.

Usage:
    python benchmarks/grid_throughput.py --data-dir ../shared/mnist [--device cpu] [--groups 1]
        [--limit-train N] [--validation N] [--limit-test N] [--seeds-cost 3] [--no-projection]
        [--threads N] [--grid-workers N] [--compile] [--compare-slices] [--compare-blocks N,N] [--slice-mb MB]
        [--json]

The sample is the first ``--groups`` groups of the seeded 2,187-point reference grid: the
81 points (activation x loss x learning rate x epochs) of one depth, width and batch size.
Each is trained three ways, side by side in one process (``train_together`` directly, no
Optuna), the ways interleaved group by group:

- groups: the whole group as one run (18 networks: nll and cross_entropy share one);
- stacks: the points of one activation and loss as one run of three learning rates (the
  shared runs before groups: six runs per group);
- alone: every point its own run.

A group's members train in cache-sized slices on the CPU (``trainer.steps``);
``--compare-slices`` also trains each group with all its members at once, ``--compare-blocks``
with the CPU optimizer update in blocks of other sizes (``trainer.optim.CPU_BLOCK``), and
``--slice-mb`` sets the slices' budget.

Trials per hour is points / wall time. ``--seeds-cost K`` also trains the sample's groups
under K seeds (K x 18 networks a run) and prints the cost against one seed, for the run and
for each network in it.

The projection times, for each of the grid's 27 groups, 12 training steps of the whole group
and one evaluation of 2,000 images, and scales them to 25 epochs of 50,000 training images
and 20,000 evaluated ones, for one and for five seeds (``--projection-only`` skips the
sample). The groups are timed in ``--grid-workers`` processes at once (default: one per core
on the CPU, one thread each, as ``python -m search grid`` runs with both cores busy; 1 on a
GPU), each taking the next group in grid order when it comes free. From those times it gives
one worker's time for the whole grid (``projected_grid_seconds``, with the FLOP/s that
achieves of the grid's arithmetic, 0.73 PFLOP a seed), the grid's wall time on the workers
(``projected_grid_wall_seconds``: groups handed out in grid order, the last ones split into
parts as a study splits them) and the cost of a network under five seeds against one.
``--json`` prints ``{"trials_per_hour": {"groups", "stacks", "alone"}, "projected_grid_seconds":
..., "projected_grid_wall_seconds": ..., ...}`` on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from search.space import SEVEN, grid_points
from trainer import Splits, TrainConfig, load_mnist, optim, resolve_device, split, steps, train
from trainer.loop import EVAL_BATCH, group_key, member_key, train_together
from trainer.model import CLASSES, weights_of
from trainer.optim import FlatOptimizer
from trainer.seeds import seed_configs
from trainer.stack import StackedMLP, loss_kind, member_order
from trainer.steps import EpochSteps

FULL_TRAIN, FULL_EVAL, MAX_EPOCHS = 50_000, 20_000, 25
PROBE_STEPS = 12


def grid_groups(device: str, seed: int = 1) -> list[list[TrainConfig]]:
    """The grid's points as configurations, in the seeded grid order, one list per group."""
    configs = [TrainConfig(device=device).replace(**point) for point in grid_points(SEVEN, seed)]
    return [list(group) for _, group in itertools.groupby(configs, key=group_key)]


def stacks_of(group: Sequence[TrainConfig]) -> list[list[TrainConfig]]:
    """The group split as before groups: one run per activation and loss (nll = cross_entropy)."""
    runs: dict[tuple[str, str], list[TrainConfig]] = {}
    for config in group:
        runs.setdefault((config.activation, loss_kind(config.loss)), []).append(config)
    return list(runs.values())


def timed(run: Callable[..., object], *args: object, clock: Callable[[], float] = time.perf_counter) -> float:
    started = clock()
    run(*args)
    return clock() - started


def with_setting(module: object, name: str, value: object, run: Callable[..., object], *args: object) -> object:
    """``run(*args)`` with ``module.name`` set to ``value`` for the call."""
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        return run(*args)
    finally:
        setattr(module, name, before)


def throughput(
    groups: Sequence[Sequence[TrainConfig]],
    splits: Splits,
    seeds_cost: int,
    compare_slices: bool = False,
    compare_blocks: Sequence[int] = (),
) -> tuple[dict[str, float], dict[str, float]]:
    """Wall and CPU seconds of each way over the sample, the ways interleaved and rotated group by group."""
    ways: dict[str, Callable[[Sequence[TrainConfig]], object]] = {
        "groups": lambda group: train_together(group, splits),
        "stacks": lambda group: [train_together(run, splits) for run in stacks_of(group)],
        "alone": lambda group: [train(config, splits) for config in group],
    }
    if compare_slices:
        ways["groups unsliced"] = lambda group: with_setting(
            steps, "SLICE_BYTES", 1 << 62, train_together, group, splits
        )
    for block in compare_blocks:
        ways[f"groups, update blocks of {block}"] = lambda group, block=block: with_setting(
            optim, "CPU_BLOCK", block, train_together, group, splits
        )
    if seeds_cost > 1:
        ways[f"groups x{seeds_cost} seeds"] = lambda group: train_together(
            [c for config in group for c in seed_configs(config, seeds_cost)], splits
        )
    walls, cpus = dict.fromkeys(ways, 0.0), dict.fromkeys(ways, 0.0)
    names = list(ways)
    for i, group in enumerate(groups):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            ways[name](group)
            walls[name] += time.perf_counter() - wall
            cpus[name] += time.process_time() - cpu
            print(f"  group {i + 1}: {name} {walls[name]:.1f} s so far ({cpus[name]:.1f} s CPU)", file=sys.stderr)
    return walls, cpus


def grid_flops(seeds: int = 1) -> float:
    """The whole grid's arithmetic: each network's 25 epochs of 50,000 training images (forward and
    backward, 6 FLOP per parameter and image) and 20,000 evaluated ones (2 FLOP), under ``seeds`` seeds."""
    networks = [m for group in grid_groups("cpu") for m in dict.fromkeys(member_key(c) for c in group)]
    per_epoch = sum(weights_of(m) * (6 * FULL_TRAIN + 2 * FULL_EVAL) for m in networks)
    return seeds * MAX_EPOCHS * per_epoch


def group_members(group: Sequence[TrainConfig], seeds: int) -> list[TrainConfig]:
    """The networks of one grid group under ``seeds`` seeds, in the order a run trains them."""
    members = list(dict.fromkeys(member_key(c) for config in group for c in seed_configs(config, seeds)))
    return [members[i] for i in member_order(members)]


def group_seconds(job: tuple[str | None, str, int, int, bool, int | None, int]) -> float:
    """Seconds of grid group ``index``'s whole run (25 epochs) under ``seeds`` seeds, from ``epoch_seconds``.

    Runs in a worker process of the projection: it loads the data itself, at ``threads``
    threads, with the compiled Adadelta update when ``compiled``.
    """
    data_dir, device, index, seeds, compiled, threads, slice_bytes = job
    steps.SLICE_BYTES = slice_bytes
    if threads:
        torch.set_num_threads(threads)
    if compiled:
        optim.compile_updates()
    # 2,000 images evaluated, scaled to the 20,000 a grid trial evaluates.
    splits = split(load_mnist(data_dir, device), validation=2000)
    group = grid_groups(device)[index]
    members = group_members(group, seeds)
    epoch = epoch_seconds(members, splits)
    shape = f"{group[0].hidden_layers}x{group[0].hidden_units} batch {group[0].batch_size}"
    print(f"  {seeds} seed(s), {shape}: {len(members)} networks, {epoch:.2f} s an epoch", file=sys.stderr)
    return MAX_EPOCHS * epoch


def projection(args: argparse.Namespace, device: str, seeds: int) -> list[float]:
    """Each grid group's run time in seconds under ``seeds`` seeds, timed in ``args.grid_workers`` processes at once.

    The processes take the groups in grid order as they come free, as a study's workers
    do, so that each group is timed while the others keep the other cores busy.
    """
    threads = 1 if args.grid_workers > 1 else args.threads
    jobs = [
        (args.data_dir, device, i, seeds, args.compile, threads, steps.SLICE_BYTES)
        for i in range(len(grid_groups(device)))
    ]
    if args.grid_workers == 1:
        return [group_seconds(job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(args.grid_workers) as pool:
        return list(pool.imap(group_seconds, jobs))


def parts_per_group(workers: int, groups_left: int) -> int:
    """Into how many parts a study splits each group so that ``workers`` have work (as ``search``'s own)."""
    return max(1, -(-workers // max(groups_left, 1)))


def grid_wall_seconds(seconds: Sequence[float], networks: Sequence[int], workers: int) -> float:
    """The wall time of the grid's groups on ``workers`` workers, each taking the next work as it comes free.

    Groups go out whole in grid order; once fewer are left than workers, a worker takes a
    part of the head group (``parts_per_group``), costing its share of the group's networks.
    """
    left = [[s, n, n] for s, n in zip(seconds, networks, strict=True)]  # seconds, networks, networks unclaimed
    free = [0.0] * workers
    while left:
        worker = min(range(workers), key=free.__getitem__)
        head = left[0]
        size = min(head[2], -(-head[1] // parts_per_group(workers, len(left))))
        free[worker] += head[0] * size / head[1]
        head[2] -= size
        if not head[2]:
            left.pop(0)
    return max(free)


def epoch_seconds(members: list[TrainConfig], splits: Splits, clock: Callable[[], float] = time.perf_counter) -> float:
    """A full epoch of ``members`` as one group, from ``PROBE_STEPS`` timed steps and one timed evaluation."""
    stack = StackedMLP(members, splits.train_x.device)
    optimizer = FlatOptimizer(members[0].optimizer, stack.param, stack.grad)
    runner = EpochSteps(stack, optimizer, splits, F.one_hot(splits.train_y, CLASSES).float(), members[0])
    batch = members[0].batch_size
    perm = torch.stack([torch.randperm(len(splits.train_y)) for _ in stack.seeds]).to(splits.train_x.device)
    lr = stack.per_network([m.learning_rate for m in members])
    runner.run(perm[:, : 2 * batch], lr)  # warm-up
    step = timed(runner.run, perm[:, : PROBE_STEPS * batch], lr, clock=clock) / PROBE_STEPS
    val_onehot = F.one_hot(splits.val_y, CLASSES).float()
    evaluation = timed(stack.evaluate, splits.val_x, splits.val_y, val_onehot, EVAL_BATCH, clock=clock)
    return -(-FULL_TRAIN // batch) * step + evaluation * FULL_EVAL / len(splits.val_y)


def projection_figures(args: argparse.Namespace, device: str) -> dict[str, object]:
    """The whole grid under 1 and 5 seeds: one worker's seconds, the wall time on ``--grid-workers``, per network."""
    networks = {s: [len(group_members(g, s)) for g in grid_groups(device)] for s in (1, 5)}
    serial, wall = {}, {}
    for seeds in (1, 5):
        seconds = projection(args, device, seeds)
        serial[seeds] = round(sum(seconds))
        wall[seeds] = round(grid_wall_seconds(seconds, networks[seeds], args.grid_workers))
    return {
        "grid_workers": args.grid_workers,
        "grid_threads_per_worker": 1 if args.grid_workers > 1 else torch.get_num_threads(),
        "projected_grid_seconds": serial[1],
        "projected_grid_seconds_by_seeds": serial,
        "projected_grid_wall_seconds": wall[1],
        "projected_grid_wall_seconds_by_seeds": wall,
        # Each network's share of a 5-seed grid against a 1-seed one (the networks per run grow 5x).
        "projected_seeds_cost_per_network": round(serial[5] / 5 / serial[1], 3),
        "grid_tflop": round(grid_flops() / 1e12, 1),
        # What the projection achieves of the arithmetic, per worker: against the device's matrix-product rate.
        "projected_gflop_per_second": {s: round(grid_flops(s) / t / 1e9, 1) for s, t in serial.items()},
    }


def step_parts(members: list[TrainConfig], splits: Splits, count: int = 60) -> dict[str, float]:
    """CPU milliseconds per network of a step's forward and backward passes, of its update and of both, as one run."""
    stack = StackedMLP(members, splits.train_x.device)
    optimizer = FlatOptimizer(members[0].optimizer, stack.param, stack.grad)
    lr = stack.per_network([m.learning_rate for m in members])
    idx = torch.arange(members[0].batch_size).expand(len(stack.seeds), -1)
    x, y = splits.train_x[idx], splits.train_y[idx]
    onehot = F.one_hot(y, CLASSES).float()
    for _ in range(5):  # warm-up
        stack.loss_and_grad(x, y, onehot)
        optimizer.step(lr)
    passes = timed(lambda: [stack.loss_and_grad(x, y, onehot) for _ in range(count)], clock=time.process_time)
    update = timed(lambda: [optimizer.step(lr) for _ in range(count)], clock=time.process_time)
    both = timed(
        lambda: [(stack.loss_and_grad(x, y, onehot), optimizer.step(lr)) for _ in range(count)], clock=time.process_time
    )
    scale = 1e3 / count / len(members)
    # Timed apart and as the training loop runs them, one after the other (each evicting the other's data).
    return {
        "forward_backward_ms": round(passes * scale, 3),
        "update_ms": round(update * scale, 3),
        "step_ms": round(both * scale, 3),
    }


def step_figures(splits: Splits, groups: int) -> dict[str, object]:
    """``step_parts`` of the first ``groups`` grid groups' networks in runs of 1, 3, 6, 9 and 18 (each size's mean)."""
    figures = {}
    for group in grid_groups(str(splits.train_x.device))[:groups]:
        members = group_members(group, 1)
        shape = f"{group[0].hidden_layers}x{group[0].hidden_units} batch {group[0].batch_size}"
        figures[shape] = {}
        for k in (1, 3, 6, 9, 18):
            runs = [step_parts(members[i : i + k], splits) for i in range(0, len(members), k)]
            figures[shape][k] = {key: round(sum(r[key] for r in runs) / len(runs), 3) for key in runs[0]}
    return figures


def sample_figures(args: argparse.Namespace, splits: Splits) -> dict[str, object]:
    """Wall times and trials per hour of the three ways (and K seeds) over the sample."""
    sample = grid_groups(str(splits.train_x.device))[: args.groups]
    points = sum(len(group) for group in sample)
    walls, cpus = throughput(sample, splits, args.seeds_cost, args.compare_slices, args.compare_blocks)
    ways = ("groups", "stacks", "alone")
    figures: dict[str, object] = {
        "sample": {"groups": args.groups, "points": points, "train_images": len(splits.train_y)},
        "wall_seconds": {name: round(wall, 2) for name, wall in walls.items()},
        "cpu_seconds": {name: round(cpu, 2) for name, cpu in cpus.items()},
        "trials_per_hour": {name: round(points * 3600 / walls[name]) for name in ways},
        # The same per hour of this process's CPU time: steadier than the wall's on a loaded machine.
        "trials_per_cpu_hour": {name: round(points * 3600 / cpus[name]) for name in ways},
    }
    if args.compare_slices:
        figures["slices_speedup"] = round(walls["groups unsliced"] / walls["groups"], 3)
        figures["slices_cpu_speedup"] = round(cpus["groups unsliced"] / cpus["groups"], 3)
    if args.seeds_cost > 1:
        ratio = walls[f"groups x{args.seeds_cost} seeds"] / walls["groups"]
        # The K-seed run trains K times the networks: its cost per network against one seed's.
        per_network = ratio / args.seeds_cost
        figures["seeds_cost"] = {
            "seeds": args.seeds_cost,
            "ratio": round(ratio, 2),
            "per_network": round(per_network, 3),
            "cpu_per_network": round(cpus[f"groups x{args.seeds_cost} seeds"] / cpus["groups"] / args.seeds_cost, 3),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR, else ./data)")
    parser.add_argument("--device", default="auto", help="device of the runs")
    parser.add_argument("--groups", type=int, default=1, help="grid groups (of 81 points) in the sample")
    parser.add_argument("--limit-train", type=int, default=2000, help="training images of the sample's runs")
    parser.add_argument("--validation", type=int, default=1000, help="training images held out for validation")
    parser.add_argument("--limit-test", type=int, default=1000, help="test images")
    parser.add_argument("--seeds-cost", type=int, default=3, help="also train the sample under K seeds (1: skip)")
    parser.add_argument(
        "--compare-slices",
        action="store_true",
        help="also train each group with its members all at once, not in cache-sized slices (trainer.steps)",
    )
    parser.add_argument(
        "--compare-blocks",
        type=lambda text: [int(b) for b in text.split(",")],
        default=[],
        help="also train each group with the CPU update in blocks of these sizes (comma-separated elements)",
    )
    parser.add_argument("--slice-mb", type=float, default=None, help="the slices' budget in MB (default: trainer's)")
    parser.add_argument("--no-projection", action="store_true", help="skip the whole grid's projection")
    parser.add_argument("--projection-only", action="store_true", help="skip the sample, only project")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument(
        "--grid-workers",
        type=int,
        default=None,
        help="workers of the projected grid, one thread each (default: one per core on the CPU, 1 on a GPU)",
    )
    parser.add_argument("--compile", action="store_true", help="compiled Adadelta updates (compiled before timing)")
    parser.add_argument(
        "--step-parts",
        action="store_true",
        help="only time a step's passes and update per network, in runs of 1 to 18 networks of each sampled group",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on stdout")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.slice_mb is not None:
        steps.SLICE_BYTES = int(args.slice_mb * (1 << 20))
    device = str(resolve_device(args.device))
    if args.grid_workers is None:
        args.grid_workers = (os.cpu_count() or 1) if device == "cpu" else 1
    data = load_mnist(args.data_dir, device)
    figures: dict[str, object] = {"device": device, "threads": torch.get_num_threads(), "compiled": args.compile}
    if args.compile:
        optim.compile_updates()
        train(TrainConfig(epochs=1, device=device), split(data, limit_train=256, limit_test=10))  # compile now
    if args.step_parts:
        figures["step_parts"] = step_figures(
            split(data, args.validation, args.limit_train, args.limit_test), args.groups
        )
        json.dump(figures, sys.stdout)
        print()
        return
    if not args.projection_only:
        figures.update(sample_figures(args, split(data, args.validation, args.limit_train, args.limit_test)))
    if not args.no_projection:
        figures.update(projection_figures(args, device))
    if args.json:
        json.dump(figures, sys.stdout)
        print()
        return
    report(figures)


def report(figures: dict) -> None:
    print(f"device {figures['device']}, {figures['threads']} threads, torch {torch.__version__}")
    if "trials_per_hour" in figures:
        rates, sample = figures["trials_per_hour"], figures["sample"]
        print(f"sample: {sample['points']} grid points, {sample['train_images']} training images")
        print("| runs | wall (s) | trials/hour |")
        print("|---|---:|---:|")
        for name in ("groups", "stacks", "alone"):
            print(f"| {name} | {figures['wall_seconds'][name]:.1f} | {rates[name]} |")
        ratios = (rates["groups"] / rates["stacks"], rates["groups"] / rates["alone"])
        print(f"groups / stacks: {ratios[0]:.2f}x; groups / alone: {ratios[1]:.2f}x")
        cpu = figures["trials_per_cpu_hour"]
        print(f"per CPU hour: groups / stacks {cpu['groups'] / cpu['stacks']:.2f}x")
    for name, cpu in figures["cpu_seconds"].items() if "cpu_seconds" in figures else ():
        if name.startswith("groups, update blocks"):
            print(f"{name}: {cpu:.1f} CPU s against {figures['cpu_seconds']['groups']:.1f} at the default")
    if "slices_speedup" in figures:
        print(
            f"groups in slices / all at once: {figures['slices_speedup']:.2f}x "
            f"({figures['slices_cpu_speedup']:.2f}x CPU)"
        )
    if "seeds_cost" in figures:
        cost = figures["seeds_cost"]
        print(f"{cost['seeds']} seeds cost {cost['ratio']:.2f}x one seed: {cost['per_network']:.2f}x a network")
    for seeds, seconds in figures.get("projected_grid_seconds_by_seeds", {}).items():
        rate, wall = (
            figures["projected_gflop_per_second"][seeds],
            figures["projected_grid_wall_seconds_by_seeds"][seeds],
        )
        print(
            f"whole grid, {seeds} seed(s), projected: {seconds / 3600:.2f} h on one worker ({rate} GFLOP/s), "
            f"{wall / 3600:.2f} h wall on {figures['grid_workers']} workers"
        )
    if "projected_seeds_cost_per_network" in figures:
        print(f"5 seeds cost {figures['projected_seeds_cost_per_network']:.2f}x a network of 1 seed")
    if "grid_tflop" in figures:
        print(f"the grid's arithmetic: {figures['grid_tflop']} TFLOP a seed")


if __name__ == "__main__":
    main()
