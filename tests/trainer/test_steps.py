"""Training steps in chunks from a fixed index buffer, and their CUDA-graph replay against eager steps."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from trainer import Splits, TrainConfig, load_mnist, split, train
from trainer.loop import train_together
from trainer.optim import FlatOptimizer
from trainer.stack import StackedMLP
from trainer.steps import EpochSteps, graphs_apply

CUDA = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: CUDA graphs need one")


def _steps(config: TrainConfig, splits: Splits, chunk: int, capture: bool = False, k: int = 2) -> EpochSteps:
    device = splits.train_x.device
    stack = StackedMLP.copies(config, k, device)
    optimizer = FlatOptimizer(config.optimizer, stack.param, stack.grad)
    onehot = F.one_hot(splits.train_y, 10).float()
    return EpochSteps(stack, optimizer, splits, onehot, config, chunk=chunk, capture=capture)


def _epochs(steps: EpochSteps, epochs: int = 2) -> list[list[float]]:
    order = torch.Generator().manual_seed(0)
    figures = []
    for epoch in range(epochs):
        lr = steps.stack.per_network([0.5 * 0.7**epoch, 1.0 * 0.7**epoch][: steps.stack.k])
        perm = torch.randperm(len(steps.y), generator=order).to(steps.y.device)
        figures.append(torch.cat(steps.run(perm, lr)).tolist())
    return figures


@pytest.mark.parametrize("optimizer", ["adadelta", "sgd"])
def test_chunks_and_tail_are_the_steps_one_by_one(splits: Splits, optimizer: str) -> None:
    """500 images in batches of 16: 32 steps (the last of 4 images), two chunks of 12 and 8 one by one."""
    config = TrainConfig(hidden_layers=2, hidden_units=24, batch_size=16, optimizer=optimizer, device="cpu")
    plain, chunked = _steps(config, splits, chunk=0), _steps(config, splits, chunk=12)
    assert _epochs(chunked) == _epochs(plain)
    assert torch.equal(chunked.stack.param, plain.stack.param)
    assert chunked.optimizer.steps == plain.optimizer.steps == 2 * 32


def test_chunks_of_a_group_of_seeds_are_the_steps_one_by_one(splits: Splits) -> None:
    """Each seed its own order: the index buffer holds one batch per seed."""
    config = TrainConfig(hidden_layers=1, hidden_units=24, batch_size=16, device="cpu")
    members = [config, config.replace(seed=2, activation="tanh"), config.replace(seed=3, loss="mse")]
    runs = []
    for chunk in (0, 12):
        stack = StackedMLP(members, splits.train_x.device)
        optimizer = FlatOptimizer(config.optimizer, stack.param, stack.grad)
        steps = EpochSteps(stack, optimizer, splits, F.one_hot(splits.train_y, 10).float(), config, chunk=chunk)
        orders = [torch.Generator().manual_seed(seed) for seed in stack.seeds]
        perm = torch.stack([torch.randperm(len(splits.train_y), generator=order) for order in orders])
        runs.append((torch.cat(steps.run(perm, stack.per_network([1.0, 0.5, 2.0]))), stack.param))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_graphs_apply_only_where_a_replay_is_exact() -> None:
    assert graphs_apply(TrainConfig(), CUDA)
    assert graphs_apply(TrainConfig(optimizer="sgd", l1=1e-4, weight_decay=1e-4), CUDA)
    assert not graphs_apply(TrainConfig(), torch.device("cpu"))
    assert not graphs_apply(TrainConfig(optimizer="adam"), CUDA)  # its bias correction counts steps
    assert not graphs_apply(TrainConfig(dropout=0.2), CUDA)  # random masks


@pytest.fixture(scope="module")
def cuda_splits(mnist_dir) -> Splits:
    return split(load_mnist(mnist_dir, "cuda", download=False), validation=100)


@needs_cuda
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"hidden_layers": 3, "activation": "tanh", "loss": "mse", "learning_rate": 10.0},
        {"optimizer": "sgd", "learning_rate": 0.05, "l1": 1e-4, "weight_decay": 1e-4},
    ],
)
def test_cuda_graphs_give_the_eager_run_bit_for_bit(cuda_splits: Splits, changes: dict) -> None:
    """Batches of 4: 125 steps an epoch, three replayed chunks of 32 and 29 eager steps."""
    config = TrainConfig(hidden_units=64, batch_size=4, epochs=3, device="cuda", **changes)
    graphed, eager = train(config, cuda_splits), train(config, cuda_splits, cuda_graphs=False)
    assert [_figures(r) for r in graphed.history] == [_figures(r) for r in eager.history]
    for p, q in zip(graphed.model.parameters(), eager.model.parameters(), strict=True):
        assert torch.equal(p, q)


@needs_cuda
def test_a_stacked_run_replays_its_graph_and_matches_eager(cuda_splits: Splits) -> None:
    config = TrainConfig(hidden_layers=2, hidden_units=32, batch_size=4, device="cuda")
    steps = _steps(config, cuda_splits, chunk=32, capture=True, k=2)
    eager = _steps(config, cuda_splits, chunk=0, k=2)
    assert _epochs(steps) == _epochs(eager)
    assert steps.graph is not None
    assert torch.equal(steps.stack.param, eager.stack.param)
    configs = [config.replace(learning_rate=lr, epochs=e) for lr in (0.1, 1.0, 10.0) for e in (1, 2)]
    graphed = train_together(configs, cuda_splits)
    plain = train_together(configs, cuda_splits, cuda_graphs=False)
    assert [[_figures(r) for r in g.history] for g in graphed] == [[_figures(r) for r in p.history] for p in plain]


def _figures(record) -> dict[str, float]:
    return {k: v for k, v in record.to_dict().items() if k != "seconds"}


def test_progress_within_an_epoch_is_told_and_changes_no_number(
    splits: Splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three slices of one network each, 32 steps each (500 images in batches of 16), told every 8 steps:
    the share of the epoch's network-steps rises to 1, and every figure is that of the steps untold."""
    monkeypatch.setattr("trainer.steps.SLICE_BYTES", 1)  # one member a slice
    monkeypatch.setattr("trainer.steps.PROGRESS_STEPS", 8)
    config = TrainConfig(hidden_layers=1, hidden_units=24, batch_size=16, device="cpu")
    plain, told = _steps(config, splits, chunk=0, k=3), _steps(config, splits, chunk=0, k=3)
    assert len(told.slices) == 3
    perm = torch.randperm(len(splits.train_y), generator=torch.Generator().manual_seed(0))
    lr = plain.stack.per_network([0.5, 1.0, 2.0])
    shares: list[float] = []
    assert torch.equal(torch.cat(told.run(perm, lr, shares.append)), torch.cat(plain.run(perm, lr)))
    assert torch.equal(told.stack.param, plain.stack.param)
    n = len(splits.train_y)
    expected = [(part * n + min(16 * step, n)) / (3 * n) for part in range(3) for step in (8, 16, 24, 32)]
    assert shares == pytest.approx(expected) and shares[-1] == 1.0
    monkeypatch.setattr("trainer.steps.PROGRESS_STEPS", 100)  # more than a slice's steps: told as each ends
    shares.clear()
    told.run(perm, lr, shares.append)
    assert shares == pytest.approx([1 / 3, 2 / 3, 1])
