"""The Adadelta update over a group's parameters: one pass per operation, cache-sized blocks, compiled.

Usage:
    python benchmarks/optimizer_update.py [--parameters 1800000] [--steps 30] [--threads N]

1.8M parameters are a group of 18 networks of 1 x 128 (the grid's networks of one shape and
batch size under one seed). Prints the milliseconds a step of each way (the best of three
rounds, interleaved), the compile time, and whether the blocks and the compiled update (one
loop, or in blocks of `optim.COMPILED_BLOCK`) give
the one-pass numbers bit for bit. "compiled, inductor's rounding" is `torch.compile` of the eager
update as written (one loop, its own fused multiply-adds and square root: not bit for bit), the
cost of rounding as the eager update does.
"""

from __future__ import annotations

import argparse
import time

import torch

from trainer import optim
from trainer.optim import FlatOptimizer


def step_ms(optimizer: FlatOptimizer, lr: torch.Tensor, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.step(lr)
    return (time.perf_counter() - started) / steps * 1e3


EAGER_BLOCK, COMPILED_BLOCK = optim.CPU_BLOCK, optim.COMPILED_BLOCK


def make(n: int, block: int, compiled: bool) -> FlatOptimizer:
    optim.CPU_BLOCK = optim.COMPILED_BLOCK = block
    optim.compile_updates(compiled)
    torch.manual_seed(0)
    optimizer = FlatOptimizer("adadelta", torch.randn(n), torch.randn(n))
    optim.compile_updates(False)
    return optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parameters", type=int, default=1_800_000, help="parameters updated (default: 1800000)")
    parser.add_argument("--steps", type=int, default=30, help="steps timed per round (default: 30)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, lr = args.parameters, torch.full((args.parameters,), 0.5)
    ways = {
        "one pass": make(n, n, False),
        "blocks": make(n, EAGER_BLOCK, False),
        "compiled, one loop": make(n, n, True),
        "compiled, blocks": make(n, COMPILED_BLOCK, True),
        "compiled, inductor's rounding": make(n, COMPILED_BLOCK, True),
    }
    ways["compiled, inductor's rounding"]._compiled = torch.compile(optim.adadelta_update, dynamic=True)
    ways["compiled, inductor's rounding"].step(lr)
    started = time.perf_counter()
    ways["compiled, one loop"].step(lr)
    compile_seconds = time.perf_counter() - started
    for optimizer in ways.values():
        if optimizer.steps == 0:
            optimizer.step(lr)
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(3):  # rounds, the ways interleaved: the machine's load drifts
        for name, optimizer in ways.items():
            best[name] = min(best[name], step_ms(optimizer, lr, args.steps))
    print(f"{n} parameters, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    for name, ms in best.items():
        print(f"{name}: {ms:.2f} ms a step")
    print(f"compile: {compile_seconds:.1f} s (first step included)")
    print(f"blocks bit for bit the one pass: {torch.equal(ways['blocks'].param, ways['one pass'].param)}")
    for name in ("compiled, one loop", "compiled, blocks"):
        print(f"{name} bit for bit the one pass: {torch.equal(ways[name].param, ways['one pass'].param)}")
    same = torch.equal(ways["compiled, blocks"].param, ways["compiled, one loop"].param)
    print(f"compiled blocks bit for bit the compiled loop (the same update, split): {same}")


if __name__ == "__main__":
    main()
