"""The training loop: in-memory batches, evaluation per epoch, a history returned as data."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from trainer.checkpoint import Checkpoint, CheckpointError
from trainer.config import TrainConfig
from trainer.data import Splits
from trainer.errors import UsageError
from trainer.interrupts import held_interrupts
from trainer.model import CLASSES, LossFn, build_model
from trainer.optim import FlatOptimizer
from trainer.stack import StackedMLP, loss_kind, member_order
from trainer.steps import GRAPH_STEPS, EpochSteps, StepsCallback, graphs_apply

EVAL_BATCH = 10_000


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's figures. Accuracies are fractions; ``seconds`` includes the evaluation.

    ``train_loss`` and ``train_accuracy`` are averaged over the epoch's batches as they
    were trained (the data loss, without the L1 penalty).
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunResult:
    """What a run produced. ``history`` holds only finite epochs; a diverged epoch ends it."""

    config: TrainConfig
    device: str
    parameter_count: int
    history: tuple[EpochRecord, ...]
    diverged: bool = False
    stopped: bool = False
    seconds: float = 0.0
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy if self.history else float("nan")

    @property
    def val_accuracy(self) -> float:
        return self.history[-1].val_accuracy if self.history else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "device": self.device,
            "parameter_count": self.parameter_count,
            "history": [r.to_dict() for r in self.history],
            "test_accuracy": self.test_accuracy if self.history else None,
            "val_accuracy": self.val_accuracy if self.history else None,
            "diverged": self.diverged,
            "stopped": self.stopped,
            "seconds": self.seconds,
        }


# Receives each epoch's record; returning True stops the run (a pruner's verdict).
EpochCallback = Callable[[EpochRecord], "bool | None"]
# Receives a configuration's index and result as it leaves a shared run.
DoneCallback = Callable[[int, "RunResult"], None]
# Receives, while an epoch trains, its number and the share of its training steps done.
EpochStepsCallback = Callable[[int, float], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; an absent device is a ``UsageError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device={name!r} but CUDA is not available here; use --device cpu or auto.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device={name!r} but MPS is not available here; use --device cpu or auto.")
    return device


def train(
    config: TrainConfig, splits: Splits, on_epoch: EpochCallback | None = None, cuda_graphs: bool = True
) -> RunResult:
    """Train ``config`` on ``splits`` (already on the run's device) and return its history."""
    return train_together([config], splits, [on_epoch], cuda_graphs=cuda_graphs)[0]


# What the members of one group may differ in: each is a network of its own.
MEMBER_FIELDS = ("activation", "loss", "learning_rate", "seed", "weight_decay", "dropout")


def group_key(config: TrainConfig) -> TrainConfig:
    """Configurations with the same key can train as one group (``train_together``), exactly.

    The key keeps what the members of a group share: hidden_layers, hidden_units,
    batch_size, optimizer, lr_decay, l1 and device. Members differ in activation, loss,
    learning rate, seed, weight decay and dropout (each a network of its own, see
    ``trainer.stack``), and in ``epochs``: under one seed the first E epochs of a longer run
    are the E-epoch run.
    """
    return config.replace(
        epochs=1, activation="relu", loss="nll", learning_rate=1.0, seed=0, weight_decay=0.0, dropout=0.0
    )


# The name the search side has always grouped by.
run_key = group_key


def member_key(config: TrainConfig) -> TrainConfig:
    """Configurations with the same key are one network of a group: they differ only in epochs and nll/cross_entropy."""
    return config.replace(epochs=1, loss=loss_kind(config.loss))


def train_together(
    configs: Sequence[TrainConfig],
    splits: Splits,
    on_epoch: Sequence[EpochCallback | None] | None = None,
    on_done: DoneCallback | None = None,
    cuda_graphs: bool = True,
    checkpoint: Checkpoint | None = None,
    on_steps: EpochStepsCallback | None = None,
) -> list[RunResult]:
    """Train configurations that share a ``group_key`` as one run; return each one's result as if run alone.

    One network per distinct ``member_key`` is trained, all of them in one group, for the
    longest ``epochs`` asked; each configuration's history is its network's first
    ``epochs`` epochs and its model is that network's weights after them. An epoch's
    ``seconds`` is the group's. A configuration leaves the run when its callback stops it,
    its network diverges or its epochs are done, and ``on_done`` then gets its index and
    result; the run ends when none is left. On CUDA the training steps are replayed as
    CUDA graphs where that is exact (``trainer.steps``), unless ``cuda_graphs`` is False.

    With ``checkpoint``, the run saves its state there after every epoch and, when the file
    exists, resumes after its last saved epoch (``trainer.checkpoint``); configurations that
    had left before it are returned again but not passed to ``on_done`` a second time. On
    resuming, each callback first sees the saved epochs again (a new trial must report
    them); one that stops its configuration there ends it after the saved epochs.

    ``on_steps`` hears, now and then while an epoch trains, how much of it is done (a
    progress view's data; it changes no number).
    """
    if not configs:
        return []
    run = _start(configs, splits, on_epoch, on_done, cuda_graphs)
    first = 1
    if checkpoint is not None and (state := checkpoint.load()) is not None:
        try:
            first = _restore(state, run) + 1
        except Exception as e:  # noqa: BLE001 - a readable file that does not fit this run (a tensor's size...)
            raise CheckpointError(str(e) or type(e).__name__) from e
        for i in _replay(run, run.callbacks):
            run.leave(i, stopped=True)
    for epoch in range(first, max(c.epochs for c in configs) + 1):
        if run.finished():
            break
        figures, seconds = _epoch(run, epoch, None if on_steps is None else functools.partial(on_steps, epoch))
        # An interrupt once the epoch is trained waits until it is told and saved: a Ctrl-C at
        # its progress line keeps the epoch (the checkpoint holds it) instead of training it again.
        with held_interrupts() if checkpoint is not None else contextlib.nullcontext():
            _tell(run, epoch, figures, seconds)
            if checkpoint is not None:
                checkpoint.save(_snapshot(epoch, run))
    if checkpoint is not None:
        checkpoint.clear()
    return [r for r in run.results if r is not None]


def _start(
    configs: Sequence[TrainConfig],
    splits: Splits,
    on_epoch: Sequence[EpochCallback | None] | None,
    on_done: DoneCallback | None,
    cuda_graphs: bool,
) -> _Run:
    """The group's run before its first epoch: one network per distinct ``member_key``, in ``member_order``."""
    base = configs[0]
    if any(group_key(c) != group_key(base) for c in configs):
        raise ValueError(
            "configurations trained together must share hidden_layers, hidden_units, batch_size, optimizer, "
            "lr_decay, l1 and device (trainer.loop.group_key)"
        )
    distinct = list(dict.fromkeys(member_key(c) for c in configs))
    members = [distinct[i] for i in member_order(distinct)]
    device = splits.train_x.device
    run = _Run(
        configs=configs,
        network=[members.index(member_key(c)) for c in configs],
        # Each seed's own batch order, drawn on the CPU so that every device sees the same one.
        orders={seed: torch.Generator().manual_seed(seed) for seed in dict.fromkeys(m.seed for m in members)},
        histories=[[] for _ in configs],
        results=[None] * len(configs),
        splits=splits,
        onehot={name: F.one_hot(y, CLASSES).to(torch.get_default_dtype()) for name, y in _labels(splits).items()},
        graphs=cuda_graphs and all(graphs_apply(m, device) for m in members),
        callbacks=list(on_epoch) if on_epoch is not None else [None] * len(configs),
        on_done=on_done,
    )
    run.start(StackedMLP(members, device), list(range(len(members))))
    run.started = time.perf_counter()
    return run


def _epoch(run: _Run, epoch: int, on_steps: StepsCallback | None = None) -> tuple[list[list[float]], float]:
    """Train and evaluate every network still needed for ``epoch``: its figures [6, K] and seconds, for ``_tell``."""
    run.narrow()
    stack, splits, onehot, epoch_start = run.stack, run.splits, run.onehot, time.perf_counter()
    # StepLR: the rate depends on the epoch index alone.
    lr = stack.per_network([m.learning_rate * m.lr_decay ** (epoch - 1) for m in stack.members])
    n = len(splits.train_y)
    perm = torch.stack([torch.randperm(n, generator=run.orders[seed]) for seed in stack.seeds])
    train_loss, train_acc = run.steps.run(perm.to(splits.train_x.device), lr, on_steps)
    val_loss, val_acc = stack.evaluate(splits.val_x, splits.val_y, onehot["val"], EVAL_BATCH)
    if splits.val_x is splits.test_x:  # --validation 0: the test set is the validation set
        test_loss, test_acc = val_loss, val_acc
    else:
        test_loss, test_acc = stack.evaluate(splits.test_x, splits.test_y, onehot["test"], EVAL_BATCH)
    # One host synchronisation per epoch, for all networks.
    figures = torch.stack([train_loss, train_acc, val_loss, val_acc, test_loss, test_acc]).tolist()
    return figures, time.perf_counter() - epoch_start


def _tell(run: _Run, epoch: int, figures: list[list[float]], seconds: float) -> None:
    """Give each configuration still running its network's ``figures`` [6, K]; let it leave when done."""
    for i, config in enumerate(run.configs):
        if run.results[i] is not None:
            continue
        values = [row[run.position(i)] for row in figures]
        if not all(math.isfinite(v) for v in values):
            run.leave(i, diverged=True)
            continue
        record = EpochRecord(epoch, *values, seconds=seconds)
        run.histories[i].append(record)
        callback = run.callbacks[i]
        if callback is not None and callback(record):
            run.leave(i, stopped=True)
        elif epoch == config.epochs:
            run.leave(i)


@dataclass
class _Run:
    """What a group's run holds between epochs: what a checkpoint saves and restores, and where results go.

    ``network[i]`` is configuration i's network, an index into the group's members;
    ``alive`` lists the members the stack still trains, in its order. Once every
    configuration of a network has left, the network leaves the stack (``narrow``): a
    finished 14-epoch point no longer trains along with a 25-epoch one. At one CPU thread
    each member's arithmetic is its own, so the others' numbers do not change.
    """

    configs: Sequence[TrainConfig]
    network: list[int]
    orders: dict[int, torch.Generator]
    histories: list[list[EpochRecord]]
    results: list[RunResult | None]
    splits: Splits
    onehot: dict[str, torch.Tensor]  # the one-hot labels of each split
    graphs: bool  # the steps replay as CUDA graphs
    callbacks: list[EpochCallback | None]
    on_done: DoneCallback | None
    started: float = 0.0  # perf_counter when training began
    stack: StackedMLP = field(init=False)
    optimizer: FlatOptimizer = field(init=False)
    steps: EpochSteps = field(init=False)
    alive: list[int] = field(init=False)

    def start(self, stack: StackedMLP, alive: list[int]) -> None:
        """Train ``stack``, which holds the members ``alive``, from here on."""
        decays = [m.weight_decay for m in stack.members]
        decay = stack.per_network(decays) if any(decays) else 0.0
        base = stack.members[0]
        self.stack, self.alive = stack, alive
        self.optimizer = FlatOptimizer(base.optimizer, stack.param, stack.grad, decay)
        chunk = GRAPH_STEPS if self.graphs else 0
        self.steps = EpochSteps(stack, self.optimizer, self.splits, self.onehot["train"], base, chunk, self.graphs)

    def position(self, i: int) -> int:
        """Where configuration i's network sits in the stack."""
        return self.alive.index(self.network[i])

    def finished(self) -> bool:
        return all(r is not None for r in self.results)

    def needed(self) -> list[int]:
        """The members some configuration still running trains on, in the stack's order."""
        running = {self.network[i] for i, r in enumerate(self.results) if r is None}
        return [m for m in self.alive if m in running]

    def narrow(self, keep: list[int] | None = None) -> None:
        """Go on with only the members ``keep`` (default: those still needed), their weights and optimizer state."""
        keep = self.needed() if keep is None else keep
        if keep == self.alive or not keep:
            return
        at = [self.alive.index(m) for m in keep]
        old_stack, state = self.stack, self.optimizer.state_dict()
        self.start(old_stack.keep(at), keep)
        self.optimizer.load_state_dict(
            {"steps": state["steps"], "a": old_stack.take(state["a"], at), "b": old_stack.take(state["b"], at)}
        )

    def leave(self, i: int, diverged: bool = False, stopped: bool = False) -> None:
        """Configuration i is done: its result, with its network's weights now, goes to ``on_done``."""
        self.results[i] = RunResult(
            config=self.configs[i],
            device=str(self.stack.param.device),
            parameter_count=self.stack.parameter_count,
            history=tuple(self.histories[i]),
            diverged=diverged,
            stopped=stopped,
            seconds=time.perf_counter() - self.started,
            model=self.stack.export(self.position(i), self.configs[i]),
        )
        if self.on_done is not None:
            self.on_done(i, self.results[i])


def _snapshot(epoch: int, run: _Run) -> dict[str, Any]:
    """Everything a run needs to go on after ``epoch`` as if never stopped (``trainer.checkpoint``)."""
    configs, stack, results = run.configs, run.stack, run.results
    left = {
        i: {"diverged": r.diverged, "stopped": r.stopped, "seconds": r.seconds, "model": r.model.state_dict()}
        for i, r in enumerate(results)
        if r is not None and r.model is not None
    }
    return {
        "configs": [c.to_dict() for c in configs],
        "epoch": epoch,
        "alive": list(run.alive),
        "param": stack.param.cpu(),
        "optimizer": run.optimizer.state_dict(),
        "orders": {seed: order.get_state() for seed, order in run.orders.items()},
        "masks": stack.mask_states(),
        "histories": [[r.to_dict() for r in history] for history in run.histories],
        "left": left,
    }


def _restore(state: dict[str, Any], run: _Run) -> int:
    """Put a ``_snapshot`` back; return its epoch."""
    configs, histories = run.configs, run.histories
    if state["configs"] != [c.to_dict() for c in configs]:
        raise UsageError("the checkpoint was saved by a run of other configurations; remove it or train those")
    run.narrow(keep=state.get("alive", run.alive))
    run.stack.param.copy_(state["param"])
    run.optimizer.load_state_dict(state["optimizer"])
    orders = state["orders"]
    for seed, order in run.orders.items():
        # Older checkpoints keep the seeds' states in a list, in the order of the group's seeds.
        order.set_state(orders[seed] if isinstance(orders, dict) else orders[list(run.orders).index(seed)])
    run.stack.set_mask_states(state["masks"])
    for history, saved in zip(histories, state["histories"], strict=True):
        history[:] = [EpochRecord(**record) for record in saved]
    for i, saved in state["left"].items():
        model = build_model(configs[i]).to(run.stack.param.device)
        model.load_state_dict(saved["model"])
        run.results[i] = RunResult(
            config=configs[i],
            device=str(run.stack.param.device),
            parameter_count=run.stack.parameter_count,
            history=tuple(histories[i]),
            diverged=saved["diverged"],
            stopped=saved["stopped"],
            seconds=saved["seconds"],
            model=model.eval(),
        )
    return state["epoch"]


def _replay(run: _Run, callbacks: Sequence[EpochCallback | None]) -> list[int]:
    """Show each callback its configuration's restored epochs; return the still running ones it stops."""
    stopped = []
    for i, callback in enumerate(callbacks):
        for record in run.histories[i] if callback is not None else ():
            if callback(record) and run.results[i] is None:
                stopped.append(i)
                break
    return stopped


def _labels(splits: Splits) -> dict[str, torch.Tensor]:
    return {"train": splits.train_y, "val": splits.val_y, "test": splits.test_y}


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy over ``x`` in large batches, without autograd."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, len(y), EVAL_BATCH):
        out = model(x[start : start + EVAL_BATCH])
        target = y[start : start + EVAL_BATCH]
        loss_sum += loss_fn(out, target) * len(target)
        correct += (out.argmax(1) == target).sum()
    return loss_sum / len(y), correct / len(y)
