"""The fully connected MNIST network, built from a ``TrainConfig``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainer.config import TrainConfig

INPUTS, CLASSES = 28 * 28, 10

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}
# The output layer each loss expects: log-probabilities, logits or probabilities.
_OUTPUTS: dict[str, Callable[[], nn.Module]] = {
    "nll": lambda: nn.LogSoftmax(dim=1),
    "cross_entropy": nn.Identity,
    "mse": lambda: nn.Softmax(dim=1),
}
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build_model(config: TrainConfig) -> nn.Sequential:
    """784 inputs, ``hidden_layers`` x (Linear, activation[, dropout]), 10 outputs.

    The last module turns the logits into what ``config.loss`` expects.
    """
    layers: list[nn.Module] = []
    width = INPUTS
    for _ in range(config.hidden_layers):
        layers += [nn.Linear(width, config.hidden_units), _ACTIVATIONS[config.activation]()]
        if config.dropout:
            layers.append(nn.Dropout(config.dropout))
        width = config.hidden_units
    layers += [nn.Linear(width, CLASSES), _OUTPUTS[config.loss]()]
    return nn.Sequential(*layers)


def loss_function(name: str) -> LossFn:
    """The mean loss over a batch, for the model's outputs and integer labels."""
    if name == "nll":
        return F.nll_loss
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "mse":
        return lambda probs, labels: F.mse_loss(probs, F.one_hot(labels, CLASSES).to(probs.dtype))
    raise ValueError(f"loss must be one of nll, cross_entropy, mse, but got loss={name!r}.")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_of(config: TrainConfig) -> int:
    """The parameter count of ``build_model(config)``, without building it."""
    widths = [INPUTS] + [config.hidden_units] * config.hidden_layers + [CLASSES]
    return sum(n_in * n_out + n_out for n_in, n_out in zip(widths, widths[1:], strict=False))
