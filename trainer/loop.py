"""The training loop: in-memory batches, evaluation per epoch, a history returned as data."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainer.config import TrainConfig
from trainer.data import Splits
from trainer.model import LossFn, build_model, loss_function, parameter_count
from trainer.optim import FlatOptimizer

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


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; an absent device is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use --device cpu or auto.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={name!r} but MPS is not available here; use --device cpu or auto.")
    return device


def train(config: TrainConfig, splits: Splits, on_epoch: EpochCallback | None = None) -> RunResult:
    """Train ``config`` on ``splits`` (already on the run's device) and return its history."""
    device = splits.train_x.device
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    param, grad = _flatten_parameters(model)
    optimizer = FlatOptimizer(config.optimizer, param, grad, config.weight_decay)
    loss_fn = loss_function(config.loss)
    l1_weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)] if config.l1 else []
    order = torch.Generator().manual_seed(config.seed)
    history: list[EpochRecord] = []
    diverged = stopped = False
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        # StepLR: the rate depends on the epoch index alone.
        lr = config.learning_rate * config.lr_decay ** (epoch - 1)
        train_loss, train_acc = _train_epoch(
            model, optimizer, lr, loss_fn, splits.train_x, splits.train_y, config, order, l1_weights
        )
        val_loss, val_acc = evaluate(model, loss_fn, splits.val_x, splits.val_y)
        if splits.val_x is splits.test_x:  # --validation 0: the test set is the validation set
            test_loss, test_acc = val_loss, val_acc
        else:
            test_loss, test_acc = evaluate(model, loss_fn, splits.test_x, splits.test_y)
        figures = torch.stack([train_loss, train_acc, val_loss, val_acc, test_loss, test_acc]).tolist()
        if not all(math.isfinite(v) for v in figures):
            diverged = True
            break
        record = EpochRecord(epoch, *figures, seconds=time.perf_counter() - epoch_start)
        history.append(record)
        if on_epoch is not None and on_epoch(record):
            stopped = True
            break
    return RunResult(
        config=config,
        device=str(device),
        parameter_count=parameter_count(model),
        history=tuple(history),
        diverged=diverged,
        stopped=stopped,
        seconds=time.perf_counter() - started,
        model=model,
    )


def _train_epoch(
    model: nn.Module,
    optimizer: FlatOptimizer,
    lr: float,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    order: torch.Generator,
    l1_weights: list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass in a seeded random order; returns mean loss and accuracy as device scalars."""
    model.train()
    n = len(y)
    perm = torch.randperm(n, generator=order).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, n, config.batch_size):
        idx = perm[start : start + config.batch_size]
        xb, yb = x[idx], y[idx]
        out = model(xb)
        loss = loss_fn(out, yb)
        objective = loss + config.l1 * sum(w.abs().sum() for w in l1_weights) if l1_weights else loss
        optimizer.grad.zero_()
        objective.backward()
        optimizer.step(lr)
        # Accumulated on the device: no host synchronisation inside the epoch.
        loss_sum.add_(loss.detach(), alpha=len(idx))
        correct += (out.detach().argmax(1) == yb).sum()
    return loss_sum / n, correct / n


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


def _flatten_parameters(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Make every parameter and its gradient a view into one flat tensor; return both.

    The optimizer then updates one tensor with a handful of element-wise operations
    per step instead of a handful per layer. Gradients must be zeroed in place (never
    set to None) so that backward keeps accumulating into the views.
    """
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset : offset + n].view_as(p)
        p.grad = grad[offset : offset + n].view_as(p)
        offset += n
    return flat, grad
