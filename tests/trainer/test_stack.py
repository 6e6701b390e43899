"""The hand-written forward and backward passes against autograd, and stacked runs against runs alone."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from trainer import ACTIVATIONS, LOSSES, TrainConfig, build_model, load_mnist, optim, split, steps, train
from trainer.loop import group_key, run_key, train_together
from trainer.model import loss_function
from trainer.stack import StackedMLP, member_order
from trainer.steps import EpochSteps, StepsCallback

CPU = torch.device("cpu")


def _batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 784, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return x, y, F.one_hot(y, 10).float()


def _autograd(config: TrainConfig, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Loss, flat gradient (layer by layer: weight then bias) and logits/outputs from autograd."""
    torch.manual_seed(config.seed)
    model = build_model(config)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    out = model(x)
    loss = loss_function(config.loss)(out, y)
    (loss + config.l1 * sum(m.weight.abs().sum() for m in linears)).backward()
    grad = torch.cat([t.reshape(-1) for m in linears for t in (m.weight.grad, m.bias.grad)])
    return loss.item(), grad, out


@pytest.mark.parametrize(("activation", "loss", "layers"), list(itertools.product(ACTIVATIONS, LOSSES, (0, 1, 3))))
def test_gradient_matches_autograd(activation: str, loss: str, layers: int) -> None:
    config = TrainConfig(hidden_layers=layers, hidden_units=24, activation=activation, loss=loss, l1=1e-3)
    x, y, onehot = _batch()
    stack = StackedMLP([config], CPU)
    got_loss, correct = stack.loss_and_grad(x[None], y[None], onehot[None])
    want_loss, want_grad, out = _autograd(config, x, y)
    assert got_loss.item() == pytest.approx(want_loss, rel=1e-6)
    assert correct.item() == (out.argmax(1) == y).sum().item()
    torch.testing.assert_close(stack.grad, want_grad, rtol=1e-5, atol=1e-7)


def test_dropout_gradient_matches_autograd_under_the_same_masks() -> None:
    config = TrainConfig(hidden_layers=2, hidden_units=24, dropout=0.5)
    x, y, onehot = _batch()
    stack = StackedMLP([config], CPU)
    masks: list[torch.Tensor] = []
    real_bernoulli = torch.Tensor.bernoulli_

    def remember(tensor: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
        real_bernoulli(tensor, p, generator=generator)
        masks.append(tensor.detach().clone().reshape(len(x), -1))
        return tensor

    torch.Tensor.bernoulli_ = remember
    try:
        stack.loss_and_grad(x[None], y[None], onehot[None])
    finally:
        torch.Tensor.bernoulli_ = real_bernoulli
    assert len(masks) == 2 and 0.3 < masks[0].mean().item() < 0.7

    # The same network in autograd, its dropout layers replaced by the masks drawn above.
    torch.manual_seed(config.seed)
    model = build_model(config)
    fixed = iter(masks)
    out = x
    for layer in model:
        out = out * next(fixed) / 0.5 if isinstance(layer, nn.Dropout) else layer(out)
    F.nll_loss(out, y).backward()
    want = torch.cat([t.reshape(-1) for m in model if isinstance(m, nn.Linear) for t in (m.weight.grad, m.bias.grad)])
    torch.testing.assert_close(stack.grad, want, rtol=1e-5, atol=1e-7)


def test_stacked_networks_start_alike_and_export_to_the_model(splits) -> None:
    config = TrainConfig(hidden_layers=2, hidden_units=16, device="cpu")
    stack = StackedMLP.copies(config, 3, CPU)
    for layer in stack.layers:
        assert torch.equal(layer.weight[0], layer.weight[2])
    model = stack.export(1)
    torch.manual_seed(config.seed)
    fresh = build_model(config)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    logits = stack.forward(splits.val_x[:50])[1]
    torch.testing.assert_close(model(splits.val_x[:50]), torch.log_softmax(logits, -1))


@pytest.mark.parametrize("optimizer", ["adadelta", "sgd", "adam"])
def test_a_stacked_run_gives_each_network_its_run_alone(splits, optimizer: str) -> None:
    """Three learning rates and three epoch counts, nine configurations: one run of three networks,
    each configuration's numbers bit for bit those of its run alone."""
    base = TrainConfig(hidden_layers=2, hidden_units=32, batch_size=50, optimizer=optimizer, device="cpu")
    rates = (0.01, 0.1, 1.0) if optimizer != "adadelta" else (0.1, 1.0, 10.0)
    configs = [base.replace(learning_rate=lr, epochs=e) for lr in rates for e in (1, 2, 4)]
    together = train_together(configs, splits)
    for config, shared in zip(configs, together, strict=True):
        alone = train(config, splits)
        assert len(shared.history) == config.epochs
        assert [_figures(r) for r in shared.history] == [_figures(r) for r in alone.history]
        for p, q in zip(shared.model.parameters(), alone.model.parameters(), strict=True):
            assert torch.equal(p, q)


def _figures(record) -> dict[str, float]:
    return {k: v for k, v in record.to_dict().items() if k != "seconds"}


def test_nll_and_cross_entropy_share_a_network_bit_for_bit(splits) -> None:
    base = TrainConfig(hidden_units=32, batch_size=50, epochs=2, device="cpu")
    configs = [base, base.replace(loss="cross_entropy"), base.replace(loss="cross_entropy", learning_rate=0.5)]
    together = train_together(configs, splits)
    for config, shared in zip(configs, together, strict=True):
        alone = train(config, splits)
        assert [_figures(r) for r in shared.history] == [_figures(r) for r in alone.history]
        assert type(list(shared.model)[-1]) is type(list(alone.model)[-1])  # LogSoftmax or Identity


def test_a_pruned_or_diverged_configuration_leaves_the_others_running(splits) -> None:
    base = TrainConfig(hidden_layers=1, hidden_units=16, batch_size=50, optimizer="sgd", device="cpu")
    configs = [base.replace(learning_rate=0.05, epochs=3), base.replace(learning_rate=1e30, epochs=3)]
    stop_first_after_one = [lambda record: record.epoch >= 1, None]
    kept, blown = train_together(configs, splits, stop_first_after_one)
    assert kept.stopped and len(kept.history) == 1
    assert blown.diverged and not blown.history
    alone = train(configs[0].replace(epochs=1), splits)
    assert kept.history[0].val_accuracy == pytest.approx(alone.history[0].val_accuracy, abs=1e-6)


def test_only_configurations_of_one_group_key_train_together(splits) -> None:
    base = TrainConfig(hidden_units=16, device="cpu")
    assert run_key is group_key
    member = {"activation": "tanh", "loss": "mse", "learning_rate": 0.1, "epochs": 5, "seed": 7}
    assert group_key(base.replace(**member, weight_decay=0.1, dropout=0.2)) == group_key(base)
    for shared in ({"hidden_layers": 2}, {"hidden_units": 32}, {"batch_size": 16}, {"optimizer": "sgd"}):
        assert group_key(base.replace(**shared)) != group_key(base)
    for shared in ({"lr_decay": 0.5}, {"l1": 1e-4}, {"device": "cuda"}):
        assert group_key(base.replace(**shared)) != group_key(base)
    with pytest.raises(ValueError, match="must share hidden_layers, hidden_units, batch_size"):
        train_together([base, base.replace(hidden_units=32)], splits)


# Members that differ in everything a group allows. Batches of 30 on 20 units leave each
# member's element-wise tensors a length that is no multiple of the vector width, so that
# ATen's scalar tail code runs on elements that fall mid-vector in the group.
MIXED = (
    {"activation": "relu", "loss": "nll", "learning_rate": 1.0, "seed": 1, "epochs": 3},
    {"activation": "sigmoid", "loss": "mse", "learning_rate": 10.0, "seed": 2, "epochs": 1},
    {"activation": "tanh", "loss": "cross_entropy", "learning_rate": 0.5, "seed": 3, "weight_decay": 0.01},
    {"activation": "relu", "loss": "mse", "learning_rate": 1.0, "seed": 1, "dropout": 0.3},
    {"activation": "elu", "loss": "nll", "seed": 2, "dropout": 0.2, "weight_decay": 1e-3, "epochs": 3},
    {"activation": "gelu", "loss": "nll", "seed": 1, "learning_rate": 2.0},
    {"activation": "leaky_relu", "loss": "cross_entropy", "seed": 4, "epochs": 1},
    {"activation": "sigmoid", "loss": "nll", "learning_rate": 10.0, "seed": 1, "epochs": 3},
    {"activation": "relu", "loss": "cross_entropy", "learning_rate": 1.0, "seed": 1, "epochs": 2},
)


# Adadelta with L1: the baseline's optimizer under --regularization's L1 points.
@pytest.mark.parametrize(("optimizer", "l1"), [("adadelta", 0.0), ("adadelta", 1e-4), ("sgd", 1e-4), ("adam", 0.0)])
def test_a_mixed_group_gives_each_member_its_run_alone(splits, optimizer: str, l1: float) -> None:
    """Activations, losses, seeds, rates, weight decay, dropout and epochs mixed: bit for bit alone."""
    base = TrainConfig(hidden_layers=2, hidden_units=20, batch_size=30, epochs=2, optimizer=optimizer, l1=l1)
    scale = 1.0 if optimizer == "adadelta" else 0.01
    configs = [base.replace(**{**m, "learning_rate": m.get("learning_rate", 1.0) * scale}, device="cpu") for m in MIXED]
    _assert_each_member_is_its_run_alone(configs, splits)


@pytest.mark.parametrize(("optimizer", "per_slice"), [("adadelta", 1), ("sgd", 2), ("adam", 4)])
def test_a_group_trained_in_slices_gives_each_member_its_run_alone(
    splits, optimizer: str, per_slice: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slices that cut through activations, losses and seeds; Adam's step count and SGD's first step per slice."""
    base = TrainConfig(hidden_layers=2, hidden_units=20, batch_size=30, epochs=2, optimizer=optimizer)
    scale = 1.0 if optimizer == "adadelta" else 0.01
    configs = [base.replace(**{**m, "learning_rate": m.get("learning_rate", 1.0) * scale}, device="cpu") for m in MIXED]
    per_member = steps.TENSORS_PER_PARAMETER * 4 * StackedMLP(configs[:1], CPU).parameter_count
    monkeypatch.setattr(steps, "SLICE_BYTES", per_slice * per_member)
    seen: list[list[int]] = []
    run = EpochSteps.run

    def sliced(
        self: EpochSteps, perm: torch.Tensor, lr: torch.Tensor, on_steps: StepsCallback | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append([part.stack.k for part in self.slices])
        return run(self, perm, lr, on_steps)

    monkeypatch.setattr(EpochSteps, "run", sliced)
    _assert_each_member_is_its_run_alone(configs, splits)
    assert seen[0][0] == per_slice and sum(seen[0]) == len(MIXED) - 1  # two configurations share a network
    assert steps.slice_members(StackedMLP(configs, CPU), torch.device("cuda")) == len(configs)


@pytest.mark.slow  # torch.compile takes 6-35 s on the 2-core CPU
def test_with_the_compiled_update_a_group_still_gives_each_member_its_run_alone(
    splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optim, "_use_compiled", False)
    monkeypatch.setattr(optim, "COMPILED_BLOCK", 1001)  # blocks that end inside members
    optim.compile_updates()
    base = TrainConfig(hidden_layers=2, hidden_units=20, batch_size=30, device="cpu")
    configs = [base.replace(**{**m, "epochs": min(m.get("epochs", 2), 2)}) for m in MIXED]
    _assert_each_member_is_its_run_alone(configs, splits)
    assert train_together(configs[:1], splits) and optim._compiled


def _assert_each_member_is_its_run_alone(configs: list[TrainConfig], splits) -> None:
    together = train_together(configs, splits)
    assert [r.config for r in together] == configs
    for config, shared in zip(configs, together, strict=True):
        alone = train(config, splits)
        assert len(shared.history) == config.epochs
        assert [_figures(r) for r in shared.history] == [_figures(r) for r in alone.history], config
        assert type(list(shared.model)[-1]) is type(list(alone.model)[-1])
        for p, q in zip(shared.model.parameters(), alone.model.parameters(), strict=True):
            assert torch.equal(p, q), config


# Every member kind a grid group trains, and the activations only random studies reach.
GRID_MEMBERS = (
    {"activation": "relu", "loss": "nll", "learning_rate": 1.0},
    {"activation": "relu", "loss": "mse", "learning_rate": 10.0, "epochs": 1},
    {"activation": "sigmoid", "loss": "nll", "learning_rate": 10.0},
    {"activation": "sigmoid", "loss": "mse", "learning_rate": 0.1},
    {"activation": "tanh", "loss": "cross_entropy", "learning_rate": 1.0, "seed": 2},
    {"activation": "tanh", "loss": "mse", "learning_rate": 0.1, "dropout": 0.2},
    {"activation": "elu", "loss": "nll", "seed": 2, "weight_decay": 1e-2},
    {"activation": "gelu", "loss": "mse", "dropout": 0.5},
    {"activation": "leaky_relu", "loss": "nll", "seed": 3},
)


@pytest.mark.parametrize(
    ("layers", "units", "batch"), list(itertools.product((1, 3, 5), (64, 128, 256), (16, 64, 256)))
)
def test_every_grid_shape_gives_each_member_its_run_alone(mnist_dir, layers: int, units: int, batch: int) -> None:
    """The grid's 27 shapes, mixed members, 100 training images: the last batch is short at each batch size."""
    small = split(load_mnist(mnist_dir, "cpu", download=False), validation=100, limit_train=100, limit_test=50)
    base = TrainConfig(hidden_layers=layers, hidden_units=units, batch_size=batch, epochs=2, device="cpu")
    _assert_each_member_is_its_run_alone([base.replace(**m) for m in GRID_MEMBERS], small)


def test_at_two_threads_a_group_is_its_members_runs_within_rounding(splits) -> None:
    """Threads split products and element-wise passes where the group's size says: equal within rounding only."""
    base = TrainConfig(hidden_layers=2, hidden_units=128, batch_size=50, epochs=2, device="cpu")
    configs = [base.replace(**m) for m in GRID_MEMBERS]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.get_num_threads() == 2
        together = train_together(configs, splits)
        alone = [train(config, splits) for config in configs]
    finally:
        torch.set_num_threads(threads)
    for config, shared, single in zip(configs, together, alone, strict=True):
        assert len(shared.history) == len(single.history) == config.epochs
        for got, want in zip(shared.history, single.history, strict=True):
            assert got.train_loss == pytest.approx(want.train_loss, rel=1e-4), config
            assert got.val_loss == pytest.approx(want.val_loss, rel=1e-3), config
            assert got.val_accuracy == pytest.approx(want.val_accuracy, abs=0.02), config
        for p, q in zip(shared.model.parameters(), single.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-3)


def test_members_of_other_seeds_start_from_their_own_weights(splits) -> None:
    config = TrainConfig(hidden_layers=1, hidden_units=16, device="cpu")
    stack = StackedMLP([config, config.replace(seed=2, activation="tanh"), config.replace(seed=1, loss="mse")], CPU)
    assert stack.seeds == [1, 2] and stack.rows == [0, 1, 0]
    assert torch.equal(stack.layers[0].weight[0], stack.layers[0].weight[2])
    assert not torch.equal(stack.layers[0].weight[0], stack.layers[0].weight[1])
    torch.manual_seed(2)
    fresh = build_model(config)
    assert torch.equal(stack.export(1).state_dict()["0.weight"], fresh.state_dict()["0.weight"])


def test_member_order_makes_equal_activations_and_losses_contiguous() -> None:
    pairs = [("relu", "nll"), ("tanh", "mse"), ("relu", "mse")]
    configs = [TrainConfig(activation=activation, loss=loss) for activation, loss in pairs]
    configs += [TrainConfig(activation="tanh", loss="mse"), TrainConfig(activation="relu", loss="cross_entropy")]
    assert member_order(configs) == [0, 4, 2, 1, 3]


def test_a_network_whose_points_are_all_done_leaves_the_group(splits, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished 1-epoch network no longer trains along with a 3-epoch one; the others' numbers stay theirs."""
    sizes: list[int] = []
    run = EpochSteps.run

    def counted(
        self: EpochSteps, perm: torch.Tensor, lr: torch.Tensor, on_steps: object = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sizes.append(self.stack.k)
        return run(self, perm, lr, on_steps)

    monkeypatch.setattr(EpochSteps, "run", counted)
    base = TrainConfig(hidden_layers=1, hidden_units=16, batch_size=50, device="cpu")
    configs = [
        base.replace(epochs=1),
        base.replace(learning_rate=0.5, epochs=3),
        base.replace(learning_rate=0.5, loss="cross_entropy", epochs=2),  # the same network as the one above
        base.replace(activation="tanh", seed=2, epochs=2),
    ]
    together = train_together(configs, splits)
    assert sizes == [3, 2, 1]
    for config, shared in zip(configs, together, strict=True):
        assert [_figures(r) for r in shared.history] == [_figures(r) for r in train(config, splits).history]
