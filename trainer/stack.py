"""K networks of one shape trained in lockstep, with hand-written forward and backward passes.

A fully connected network is a few matrix products and element-wise functions, so its
gradients are written out here instead of being recorded by autograd: that halves the
operations per step and drops the autograd engine's overhead, which for a network this
small costs more than the arithmetic. The element-wise backward functions are ATen's own
(``threshold_backward``, ``tanh_backward``...), the ones autograd would call.

K networks that share a shape and see the same batches (the same seed) are stacked: one
set of element-wise operations and one optimizer step per batch serve all K, and on a GPU
each layer's K matrix products are one batched product. Each network's numbers are its
own, bit for bit those of its run alone; nothing is shared between them but the input.

Parameters live layer-major in one flat tensor, for each layer the K weight matrices and
then the K bias vectors, so that one optimizer updates all of them at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from trainer.config import TrainConfig
from trainer.model import CLASSES, build_model

aten = torch.ops.aten
LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default


@dataclass(frozen=True)
class Layer:
    """Views into the flat parameter and gradient tensors: weights [K, out, in], biases [K, out]."""

    weight: torch.Tensor
    bias: torch.Tensor
    weight_grad: torch.Tensor
    bias_grad: torch.Tensor


@dataclass
class _Tape:
    """What the backward pass needs from the forward one."""

    inputs: list[torch.Tensor]  # each layer's input, [K, B, in] (the first: [B, 784] expanded)
    pre: list[torch.Tensor]  # each hidden layer's pre-activation [K, B, H]
    post: list[torch.Tensor]  # and its activation, before dropout
    masks: list[torch.Tensor | None]  # each hidden layer's dropout mask, scaled by 1 / (1 - p)


class StackedMLP:
    """``k`` copies of ``build_model(config)``'s network, from its seeded initial weights.

    ``forward`` returns logits [K, B, 10]; ``loss_and_grad`` fills ``grad`` for a batch
    and returns each network's mean data loss and correct count.
    """

    def __init__(self, config: TrainConfig, k: int, device: torch.device) -> None:
        self.config, self.k = config, k
        torch.manual_seed(config.seed)
        linears = [m for m in build_model(config) if isinstance(m, nn.Linear)]
        total = k * sum(m.weight.numel() + m.bias.numel() for m in linears)
        self.param = torch.empty(total, device=device)
        self.grad = torch.zeros(total, device=device)
        self.layers: list[Layer] = []
        offset = 0
        for m in linears:
            views = []
            for tensor in (m.weight, m.bias):
                n = k * tensor.numel()
                shape = (k, *tensor.shape)
                self.param[offset : offset + n].view(shape).copy_(tensor.detach().expand(shape))
                views.append((self.param[offset : offset + n].view(shape), self.grad[offset : offset + n].view(shape)))
                offset += n
            (w, gw), (b, gb) = views
            self.layers.append(Layer(w, b, gw, gb))
        self._forward_act, self._backward_act = _activation(config.activation)
        self.batched = device.type != "cpu"
        self.parameter_count = total // k

    def forward(self, x: torch.Tensor, tape: _Tape | None = None, dropout: float = 0.0) -> torch.Tensor:
        """Logits [K, B, 10] for inputs [B, 784]; with ``tape``, keep what backward needs."""
        x = x.expand(self.k, *x.shape)
        first = self.layers[0]
        h = self._product(x, first.weight.transpose(1, 2), first.bias)
        if tape is not None:
            tape.inputs.append(x)
        for layer in self.layers[1:]:
            a = post = self._forward_act(h)
            mask = None
            if dropout:
                mask = torch.empty_like(a).bernoulli_(1 - dropout).div_(1 - dropout)
                a = a * mask
            if tape is not None:
                tape.pre.append(h)
                tape.post.append(post)
                tape.masks.append(mask)
                tape.inputs.append(a)
            h = self._product(a, layer.weight.transpose(1, 2), layer.bias)
        return h

    def loss_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, dropout: float = 0.0, l1: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the gradient of each network's batch loss into ``grad``; return (loss [K], correct [K])."""
        tape = _Tape([], [], [], [])
        z = self.forward(x, tape, dropout)
        loss, dz = _loss_and_grad(self.config.loss, z, y, onehot)
        correct = (z.argmax(-1) == y).sum(1)
        for i in range(len(self.layers) - 1, -1, -1):
            layer, a = self.layers[i], tape.inputs[i]
            self._product(dz.transpose(1, 2), a, out=layer.weight_grad)
            torch.sum(dz, dim=1, out=layer.bias_grad)
            if l1:
                layer.weight_grad.add_(layer.weight.sign(), alpha=l1)
            if i == 0:
                break
            da = self._product(dz, layer.weight)
            mask = tape.masks[i - 1]
            if mask is not None:
                da = da * mask
            dz = self._backward_act(da, tape.pre[i - 1], tape.post[i - 1])
        return loss, correct

    def _product(
        self, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``a[k] @ b[k] (+ bias[k])`` for each network k.

        One batched product where it is worth it (GPUs). On the CPU, one product per
        network: a batched product there splits its work across threads differently for
        different K, which changes the rounding, so that a stacked network would not give
        bit for bit the numbers of its run alone.
        """
        if out is None:
            out = torch.empty(self.k, a.shape[1], b.shape[2], device=a.device, dtype=a.dtype)
        if self.batched:
            if bias is None:
                return torch.bmm(a, b, out=out)
            return torch.baddbmm(bias.unsqueeze(1), a, b, out=out)
        for k in range(self.k):
            if bias is None:
                torch.mm(a[k], b[k], out=out[k])
            else:
                torch.addmm(bias[k], a[k], b[k], out=out[k])
        return out

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, chunk: int) -> tuple[torch.Tensor, ...]:
        """Each network's mean loss [K] and accuracy [K] over ``x``, in chunks of ``chunk`` images."""
        loss_sum = torch.zeros(self.k, device=x.device)
        correct = torch.zeros(self.k, dtype=torch.long, device=x.device)
        for start in range(0, len(y), chunk):
            target = y[start : start + chunk]
            z = self.forward(x[start : start + chunk])
            loss, _ = _loss_and_grad(self.config.loss, z, target, onehot[start : start + chunk], grad=False)
            loss_sum += loss * len(target)
            correct += (z.argmax(-1) == target).sum(1)
        return loss_sum / len(y), correct / len(y)

    def export(self, index: int, config: TrainConfig | None = None) -> nn.Sequential:
        """Network ``index`` as the ``nn.Module`` that ``build_model`` makes, with its weights copied."""
        model = build_model(config or self.config).to(self.param.device)
        linears = [m for m in model if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for m, layer in zip(linears, self.layers, strict=True):
                m.weight.copy_(layer.weight[index])
                m.bias.copy_(layer.bias[index])
        return model.eval()

    def per_network(self, values: Sequence[float]) -> torch.Tensor:
        """A tensor shaped like ``param`` holding ``values[k]`` at every parameter of network k."""
        values_t = torch.tensor(values, dtype=self.param.dtype, device=self.param.device)
        parts = []
        for layer in self.layers:
            for t in (layer.weight, layer.bias):
                parts.append(values_t.unsqueeze(1).expand(self.k, t[0].numel()).reshape(-1))
        return torch.cat(parts)


def _loss_and_grad(
    name: str, z: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, grad: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each network's mean loss over the batch [K] and, with ``grad``, its gradient w.r.t. the logits.

    nll sits on a log-softmax output and cross_entropy on logits: the same function of the
    logits. mse compares the softmax probabilities with the one-hot labels.
    """
    batch = len(y)
    if name in ("nll", "cross_entropy"):
        logp = torch.log_softmax(z, dim=-1)
        loss = -(logp * onehot).sum((1, 2)) / batch
        return loss, (logp.exp_().sub_(onehot).div_(batch) if grad else None)
    if name == "mse":
        q = torch.softmax(z, dim=-1)
        diff = q - onehot
        loss = diff.square().sum((1, 2)) / (batch * CLASSES)
        if not grad:
            return loss, None
        dq = diff.mul_(2 / (batch * CLASSES))
        return loss, aten._softmax_backward_data(dq, q, -1, q.dtype)
    raise ValueError(f"loss must be one of nll, cross_entropy, mse, but got loss={name!r}.")


def _activation(name: str):
    """(forward, backward(grad_out, input, output)) for a hidden layer's activation."""
    table = {
        "relu": (torch.relu, lambda g, h, a: aten.threshold_backward(g, a, 0)),
        "sigmoid": (torch.sigmoid, lambda g, h, a: aten.sigmoid_backward(g, a)),
        "tanh": (torch.tanh, lambda g, h, a: aten.tanh_backward(g, a)),
        "leaky_relu": (
            lambda h: F.leaky_relu(h, LEAKY_SLOPE),
            lambda g, h, a: aten.leaky_relu_backward(g, h, LEAKY_SLOPE, False),
        ),
        "elu": (F.elu, lambda g, h, a: aten.elu_backward(g, 1.0, 1, 1, False, h)),
        "gelu": (F.gelu, lambda g, h, a: aten.gelu_backward(g, h)),
    }
    if name not in table:
        raise ValueError(f"activation must be one of {', '.join(table)}, but got activation={name!r}.")
    return table[name]
