"""An epoch's training steps: in cache-sized slices of the group on the CPU, replayed as CUDA graphs on a GPU.

A step of these small networks is some forty tiny kernels; launched one by one from
Python, the GPU waits on the launches, not on the arithmetic. On CUDA the steps are
therefore recorded once as a graph of ``GRAPH_STEPS`` consecutive steps that reads its
batch indices from a fixed buffer, and each later group of steps is one copy of indices
and one replay. The kernels and their order are the eager ones, so the numbers are too
(a GPU test compares them bit for bit).

Graphs are used only where a replay is the same computation as the eager steps: the
learning rates sit in a fixed buffer refilled each epoch, Adadelta and SGD keep no step
count that changes their arithmetic after the first step (Adam's bias correction does),
and without dropout no random numbers are drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from trainer.config import TrainConfig
from trainer.data import Splits
from trainer.optim import FlatOptimizer
from trainer.stack import StackedMLP

GRAPH_STEPS = 32  # steps per graph: enough to hide the launch of a replay, little to record
GRAPH_OPTIMIZERS = ("adadelta", "sgd")
# The most bytes of weights, gradients, optimizer state and per-element rates (4 bytes each) that a
# slice of a group's members holds on the CPU (see ``EpochSteps``): two or three networks of the
# grid's shapes, two slices within the 32 MB L3 that the 2-core EPYC's two workers share. A step
# costs a network least in runs of about three (``benchmarks/grid_throughput.py --step-parts``,
# docs/performance.md); ``--compare-slices`` and ``--slice-mb`` time slices against none.
SLICE_BYTES = 8 << 20
# The per-element tensors a member's parameter has in a step: itself, its gradient, the two of
# the optimizer's state and the learning rate.
TENSORS_PER_PARAMETER = 5
# Steps between two calls of ``EpochSteps.run``'s ``on_steps``: a call costs far less than a step.
PROGRESS_STEPS = 32

# Receives the share of an epoch's network-steps done so far (each member's steps, over all members).
StepsCallback = Callable[[float], None]


def graphs_apply(config: TrainConfig, device: torch.device) -> bool:
    """Whether ``config`` on ``device`` may replay its steps as CUDA graphs (see the module's note)."""
    return device.type == "cuda" and config.optimizer in GRAPH_OPTIMIZERS and not config.dropout


def slice_members(stack: StackedMLP, device: torch.device) -> int:
    """How many of ``stack``'s members train as one slice: all on a GPU, on the CPU as many as fit ``SLICE_BYTES``."""
    if device.type != "cpu":
        return stack.k
    return max(1, min(stack.k, SLICE_BYTES // (TENSORS_PER_PARAMETER * 4 * stack.parameter_count)))


class EpochSteps:
    """Runs the training steps of each epoch of one group's run.

    On the CPU the group's members train in slices (``slice_members``), each slice through
    all of the epoch's steps before the next. The members are independent networks, so
    their numbers are those of the whole group's steps (each seed's batch order is the
    epoch's, and at one thread a batched product is each member's own, ``trainer.stack``);
    but a slice's weights, gradients and optimizer state stay in the cache from one step to
    the next, where the whole group's would stream from memory at every step (an 18-network
    3 x 128 group holds 48 MB of them).

    On a GPU, ``chunk`` steps at a time from a fixed index buffer, captured as a CUDA graph
    after the first such chunk has run eagerly (the warm-up a capture needs) when
    ``capture``; the epoch's last steps, fewer than a chunk, run eagerly. With ``chunk=0``
    every step runs eagerly. Losses and correct counts accumulate on the device.
    """

    def __init__(
        self,
        stack: StackedMLP,
        optimizer: FlatOptimizer,
        splits: Splits,
        onehot: torch.Tensor,
        config: TrainConfig,
        chunk: int = 0,
        capture: bool = False,
    ) -> None:
        self.stack, self.optimizer, self.config = stack, optimizer, config
        self.x, self.y, self.onehot = splits.train_x, splits.train_y, onehot
        device = stack.param.device
        self.chunk, self.capture = chunk, capture
        self.lr = torch.empty_like(stack.param)
        self.loss_sum = torch.zeros(stack.k, device=device)
        self.correct = torch.zeros(stack.k, dtype=torch.long, device=device)
        self.idx = torch.empty(max(chunk, 1), len(stack.seeds), config.batch_size, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        size = stack.k if chunk else slice_members(stack, device)
        self.slices = [self._slice(start, min(start + size, stack.k)) for start in range(0, stack.k, size)]

    def _slice(self, start: int, stop: int) -> _Slice:
        """Members ``start:stop``: the group itself when they are all of it, else views of its members."""
        stack, optimizer = self.stack, self.optimizer
        if (start, stop) != (0, stack.k):
            stack = self.stack.members_view(start, stop)
            optimizer = self.optimizer.part(self.stack.parameter_ranges(start, stop))
        rows = None if stack is self.stack else [self.stack.seeds.index(seed) for seed in stack.seeds]
        return _Slice(stack, optimizer, rows, self.loss_sum[start:stop], self.correct[start:stop])

    def run(
        self, perm: torch.Tensor, lr: torch.Tensor, on_steps: StepsCallback | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over ``perm`` at rates ``lr``; each member's mean loss and accuracy.

        ``perm`` holds one order of the training images per seed of the group, [S, N] (or [N]
        for one seed), on the device. ``on_steps`` gets the share of the epoch done every
        ``PROGRESS_STEPS`` steps of a slice, at its end and after each chunk; it changes no number.
        """
        perm = perm.view(-1, perm.shape[-1])
        self.lr.copy_(lr)
        self.loss_sum.zero_()
        self.correct.zero_()
        seeds, n, batch = perm.shape[0], perm.shape[1], self.config.batch_size
        tail = 0  # where the steps fewer than a chunk begin (a chunk is of the whole group)
        if self.chunk:
            span = self.chunk * batch
            tail = n - n % span
            for start in range(0, tail, span):
                self.idx.copy_(perm[:, start : start + span].view(seeds, self.chunk, batch).transpose(0, 1))
                self._run_chunk()
                if on_steps is not None:
                    on_steps((start + span) / n)
        steps = self.optimizer.steps
        done = self.stack.k * tail  # network-images through the epoch's steps so far
        for part in self.slices:
            part.optimizer.steps = steps  # each slice takes the epoch's steps from the same count
            order = perm if part.rows is None else perm[part.rows]
            for step, start in enumerate(range(tail, n, batch), 1):
                self._step(order[:, start : start + batch], part)
                if on_steps is not None and (step % PROGRESS_STEPS == 0 or start + batch >= n):
                    on_steps((done + part.stack.k * (min(start + batch, n) - tail)) / (self.stack.k * n))
            done += part.stack.k * (n - tail)
        self.optimizer.steps = part.optimizer.steps
        return self.loss_sum / n, self.correct / n

    def _step(self, idx: torch.Tensor, part: _Slice) -> None:
        loss, right = part.stack.loss_and_grad(self.x[idx], self.y[idx], self.onehot[idx])
        part.optimizer.step(self.lr)
        part.loss_sum.add_(loss, alpha=idx.shape[-1])
        part.correct.add_(right)

    def _chunk(self) -> None:
        for row in self.idx:
            self._step(row, self.slices[0])

    def _run_chunk(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        if not self.capture:
            self._chunk()
            return
        # Capture needs the kernels' first-use set-up (cuBLAS workspaces) done beforehand on a
        # side stream: the first chunk runs there for real, then is recorded (recording runs nothing).
        current = torch.cuda.current_stream(self.x.device)
        side = torch.cuda.Stream(self.x.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            self._chunk()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._chunk()
        self.graph = graph


class _Slice(NamedTuple):
    """Members of a group that step together: their passes, their update, their seeds' rows of an
    epoch's orders (None: all of them) and their views of the epoch's loss sums and correct counts."""

    stack: StackedMLP
    optimizer: FlatOptimizer
    rows: list[int] | None
    loss_sum: torch.Tensor
    correct: torch.Tensor
