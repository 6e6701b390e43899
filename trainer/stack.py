"""A group of networks of one shape trained in lockstep, with hand-written forward and backward passes.

A fully connected network is a few matrix products and element-wise functions, so its
gradients are written out here instead of being recorded by autograd: that halves the
operations per step and drops the autograd engine's overhead, which for a network this
small costs more than the arithmetic. The element-wise backward functions are ATen's own
(``threshold_backward``, ``tanh_backward``...), the ones autograd would call.

The members of a group share a shape (depth and width) and a batch size, and may differ
in activation, loss, seed (initial weights, batch order, dropout masks), learning rate,
weight decay and dropout. One batched product per layer (``bmm``, ``baddbmm``), one set of
element-wise operations and one optimizer step per batch serve them all, on every device.
On the CPU at one thread each member's numbers are its own, bit for bit those of its run
alone:

- a batched product at one thread is each member's own product, in the same order;
- functions whose vectorised and scalar code round differently (sigmoid, elu, exp...: ATen
  runs the last elements of a tensor through the scalar code) run over a slice of members
  at once only where each member's part is whole vector blocks, so that every element goes
  through the code it goes through alone; otherwise on each member's own slice, which has
  the shape of the run alone. ReLU and leaky ReLU, exact wherever an element falls, and the
  sums, which reduce each member's part as its run alone does, always run over the group;
- each seed draws its own batch order, and each member with dropout its own masks from its
  own generator, so that nothing a member sees depends on the rest of its group.

With more threads (or on a GPU), the kernels split a product or an element-wise pass across them at points
that depend on the group's size, so a member equals its run alone within rounding only
(``tests/trainer/test_stack.py`` bounds it).

Members are ordered so that equal activations (and losses) are contiguous. Parameters live
layer-major in one flat tensor, for each layer the K weight matrices and then the K bias
vectors, so that one optimizer updates all of them at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from trainer.config import TrainConfig
from trainer.model import CLASSES, build_model

aten = torch.ops.aten
LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default
# Activations computed by comparisons and one product: the same bits in ATen's vector and scalar code.
EXACT_ANYWHERE = ("relu", "leaky_relu")
# Elements of a vector block in ATen's CPU loops (twice the widest vector, AVX-512's 16 floats):
# a member's part made of whole blocks never meets the scalar tail code.
VECTOR_BLOCK = 32
# Offset of a member's dropout stream from its seed, so that masks and batch order are separate draws.
DROPOUT_STREAM = 1 << 32


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

    inputs: list[torch.Tensor]  # each layer's input [K, B, in]
    pre: list[torch.Tensor]  # each hidden layer's pre-activation [K, B, H]
    post: list[torch.Tensor]  # and its activation, before dropout
    masks: list[list[torch.Tensor | None]]  # each hidden layer's dropout mask per member, scaled by 1 / (1 - p)


def loss_kind(loss: str) -> str:
    """nll on a log-softmax output and cross_entropy on logits are one function of the logits."""
    return "nll" if loss == "cross_entropy" else loss


class StackedMLP:
    """One network per member configuration, each from its seed's initial weights.

    ``members`` share ``hidden_layers`` and ``hidden_units`` and should be ordered so that
    equal activations and losses are contiguous (``member_order``). ``forward`` returns
    logits [K, B, 10]; ``loss_and_grad`` fills ``grad`` for a batch and returns each
    member's mean data loss and correct count.
    """

    def __init__(self, members: Sequence[TrainConfig], device: torch.device) -> None:
        self.members, self.k = tuple(members), len(members)
        base = self.members[0]
        if any((m.hidden_layers, m.hidden_units) != (base.hidden_layers, base.hidden_units) for m in self.members):
            raise ValueError("members of one group must share hidden_layers and hidden_units")
        self.config = base
        linears = [[m for m in _initial_model(c) if isinstance(m, nn.Linear)] for c in self.members]
        self.parameter_count = sum(m.weight.numel() + m.bias.numel() for m in linears[0])
        self.param = torch.empty(self.k * self.parameter_count, device=device)
        self.grad = torch.zeros_like(self.param)
        self.layers: list[Layer] = []
        offset = 0
        for depth in range(len(linears[0])):
            views = []
            for name in ("weight", "bias"):
                shape = (self.k, *getattr(linears[0][depth], name).shape)
                n = shape[0] * getattr(linears[0][depth], name).numel()
                view = self.param[offset : offset + n].view(shape)
                for k, network in enumerate(linears):
                    view[k].copy_(getattr(network[depth], name).detach())
                views.append((view, self.grad[offset : offset + n].view(shape)))
                offset += n
            (w, gw), (b, gb) = views
            self.layers.append(Layer(w, b, gw, gb))
        self._masks = [
            torch.Generator(device).manual_seed(m.seed + DROPOUT_STREAM) if m.dropout else None for m in self.members
        ]
        self._set_members(self.members, device)
        self.l1 = base.l1
        # A GPU's element-wise kernels compute every element alike, wherever it falls.
        self._vector_tails = device.type == "cpu"

    def _set_members(self, members: tuple[TrainConfig, ...], device: torch.device) -> None:
        """What the passes read of the members: seeds, each member's batch order, segments, dropout."""
        self.members, self.k = members, len(members)
        self.seeds = list(dict.fromkeys(m.seed for m in members))
        self.rows = [self.seeds.index(m.seed) for m in members]  # each member's batch order
        self._rows = torch.tensor(self.rows, device=device)
        self.activations = _segments([m.activation for m in members])
        self.losses = _segments([loss_kind(m.loss) for m in members])
        self.dropout = [m.dropout for m in members]

    def members_view(self, start: int, stop: int) -> StackedMLP:
        """Members ``start:stop`` as a group that trains in place: its layers, gradients and mask
        generators are views of this group's (no copies), so its steps update this group's members.

        It has no flat ``param`` or ``grad`` of its own (its members' parameters are a contiguous
        range of each layer's, not of the flat tensor); ``parameter_ranges`` gives them.
        """
        view = copy.copy(self)
        view._set_members(self.members[start:stop], self.param.device)
        view.layers = [
            Layer(
                layer.weight[start:stop],
                layer.bias[start:stop],
                layer.weight_grad[start:stop],
                layer.bias_grad[start:stop],
            )
            for layer in self.layers
        ]
        view._masks = self._masks[start:stop]
        view.param = view.grad = None
        return view

    def parameter_ranges(self, start: int, stop: int) -> list[slice]:
        """Where the parameters of members ``start:stop`` lie in the flat ``param``: one range per layer tensor."""
        return [slice(offset + start * t[0].numel(), offset + stop * t[0].numel()) for offset, t in self._tensors()]

    def _tensors(self) -> list[tuple[int, torch.Tensor]]:
        """Each layer's weights [K, out, in] and biases [K, out], in the flat order, with their offsets in it."""
        tensors, offset = [], 0
        for layer in self.layers:
            for t in (layer.weight, layer.bias):
                tensors.append((offset, t))
                offset += t.numel()
        return tensors

    @classmethod
    def copies(cls, config: TrainConfig, k: int, device: torch.device) -> StackedMLP:
        """``k`` members that are all ``config``."""
        return cls([config] * k, device)

    def forward(self, x: torch.Tensor, tape: _Tape | None = None) -> torch.Tensor:
        """Logits [K, B, 10] for inputs [B, 784] seen by all, or [S, B, 784] by seed (``rows``).

        With ``tape``, a training pass: members with dropout draw masks, and what backward
        needs is kept.
        """
        inputs = self._member_inputs(x)
        first = self.layers[0]
        h = self._product(inputs, first.weight.transpose(1, 2), first.bias)
        if tape is not None:
            tape.inputs.append(inputs)
        for layer in self.layers[1:]:
            a = post = self._activate(h)
            masks: list[torch.Tensor | None] = [None] * self.k
            if tape is not None and any(self.dropout):
                a, masks = self._drop(post)
            if tape is not None:
                tape.pre.append(h)
                tape.post.append(post)
                tape.masks.append(masks)
                tape.inputs.append(a)
            h = self._product(a, layer.weight.transpose(1, 2), layer.bias)
        return h

    def loss_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the gradient of each member's batch loss into ``grad``; return (loss [K], correct [K]).

        ``x`` [S, B, 784], ``y`` [S, B] and ``onehot`` [S, B, 10] hold one batch per seed.
        """
        tape = _Tape([], [], [], [])
        z = self.forward(x, tape)
        y, onehot = self._by_member(y), self._by_member(onehot)
        loss, dz = self._loss(z, y, onehot, grad=True)
        correct = (z.argmax(-1) == y).sum(1)
        for i in range(len(self.layers) - 1, -1, -1):
            layer, a = self.layers[i], tape.inputs[i]
            self._product(dz.transpose(1, 2), a, out=layer.weight_grad)
            self._sum_rows(dz, layer.bias_grad)
            if self.l1:
                layer.weight_grad.add_(layer.weight.sign(), alpha=self.l1)
            if i == 0:
                break
            da = self._product(dz, layer.weight)
            for k, mask in enumerate(tape.masks[i - 1]):
                if mask is not None:
                    da[k].mul_(mask)
            dz = self._activation_backward(da, tape.pre[i - 1], tape.post[i - 1])
        return loss, correct

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, chunk: int) -> tuple[torch.Tensor, ...]:
        """Each member's mean loss [K] and accuracy [K] over ``x``, in chunks of ``chunk`` images."""
        loss_sum = torch.zeros(self.k, device=x.device)
        correct = torch.zeros(self.k, dtype=torch.long, device=x.device)
        for start in range(0, len(y), chunk):
            target = y[start : start + chunk]
            z = self.forward(x[start : start + chunk])
            targets = onehot[start : start + chunk].expand(self.k, -1, -1)
            loss, _ = self._loss(z, target, targets, grad=False)
            loss_sum += loss * len(target)
            correct += (z.argmax(-1) == target).sum(1)
        return loss_sum / len(y), correct / len(y)

    def export(self, index: int, config: TrainConfig | None = None) -> nn.Sequential:
        """Member ``index`` as the ``nn.Module`` that ``build_model`` makes, with its weights copied."""
        model = build_model(config or self.members[index]).to(self.param.device)
        linears = [m for m in model if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for m, layer in zip(linears, self.layers, strict=True):
                m.weight.copy_(layer.weight[index])
                m.bias.copy_(layer.bias[index])
        return model.eval()

    def per_network(self, values: Sequence[float]) -> torch.Tensor:
        """A tensor shaped like ``param`` holding ``values[k]`` at every parameter of member k."""
        values_t = torch.tensor(values, dtype=self.param.dtype, device=self.param.device)
        parts = []
        for layer in self.layers:
            for t in (layer.weight, layer.bias):
                parts.append(values_t.unsqueeze(1).expand(self.k, t[0].numel()).reshape(-1))
        return torch.cat(parts)

    def keep(self, indices: Sequence[int]) -> StackedMLP:
        """A group of the members at ``indices`` (in that order) as they are now: weights and mask generators."""
        kept = StackedMLP([self.members[i] for i in indices], self.param.device)
        kept.param.copy_(self.take(self.param, indices))
        kept._masks = [self._masks[i] for i in indices]
        return kept

    def take(self, flat: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
        """The members at ``indices`` of a flat tensor laid out like ``param`` (an optimizer's state, say)."""
        index = torch.tensor(list(indices), device=flat.device)
        parts = [
            flat[offset : offset + t.numel()].view(t.shape).index_select(0, index) for offset, t in self._tensors()
        ]
        return torch.cat([part.reshape(-1) for part in parts])

    def mask_states(self) -> list[torch.Tensor | None]:
        """Each member's dropout generator state (None without dropout), for a checkpoint."""
        return [None if g is None else g.get_state() for g in self._masks]

    def set_mask_states(self, states: Sequence[torch.Tensor | None]) -> None:
        for generator, state in zip(self._masks, states, strict=True):
            if generator is not None:
                generator.set_state(state)

    def _member_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's batch [K, B, 784]: a view when all members see one batch."""
        if x.dim() == 2:
            return x.expand(self.k, *x.shape)
        return x.expand(self.k, *x.shape[1:]) if len(x) == 1 else x.index_select(0, self._rows)

    def _by_member(self, t: torch.Tensor) -> torch.Tensor:
        """A per-seed tensor [S, ...] as a per-member one [K, ...]."""
        return t.expand(self.k, *t.shape[1:]) if len(t) == 1 else t.index_select(0, self._rows)

    def _product(
        self, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``a[k] @ b[k] (+ bias[k])`` for each member k, as one batched product."""
        if bias is None:
            return torch.bmm(a, b, out=out)
        return torch.baddbmm(bias.unsqueeze(1), a, b, out=out)

    def _each(self, segments: list[tuple[str, int, int]], fn, *tensors: torch.Tensor):
        """``fn(name, *slices)`` over each segment of members, or over each member where ``_whole`` fails.

        One segment covering the group (or one member) returns ``fn``'s result itself;
        otherwise the pieces are written into a new tensor shaped like the first input.
        """
        whole = self._whole(tensors[0][0].numel())
        if len(segments) == 1 and whole(segments[0][0]):
            return fn(segments[0][0], *tensors)
        out = torch.empty_like(tensors[0])
        for name, start, stop in segments:
            if whole(name):
                out[start:stop] = fn(name, *(t[start:stop] for t in tensors))
            else:
                for k in range(start, stop):
                    out[k] = fn(name, *(t[k] for t in tensors))
        return out

    def _whole(self, member_elements: int) -> Callable[[str], bool]:
        """Whether an activation may run over several members whose parts hold ``member_elements`` each."""
        if self.k == 1 or not self._vector_tails or member_elements % VECTOR_BLOCK == 0:
            return lambda name: True
        return _exact_anywhere

    def _activate(self, h: torch.Tensor) -> torch.Tensor:
        return self._each(self.activations, lambda name, t: _ACTIVATIONS[name][0](t), h)

    def _activation_backward(self, da: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        backward = lambda name, g, h, a: _ACTIVATIONS[name][1](g, h, a)  # noqa: E731
        return self._each(self.activations, backward, da, pre, post)

    def _drop(self, post: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Dropout's output and each member's mask, drawn from the member's own generator."""
        a = post.clone()
        masks: list[torch.Tensor | None] = []
        for k, (p, generator) in enumerate(zip(self.dropout, self._masks, strict=True)):
            mask = None
            if p:
                mask = torch.empty_like(a[k]).bernoulli_(1 - p, generator=generator).div_(1 - p)
                a[k].mul_(mask)
            masks.append(mask)
        return a, masks

    @staticmethod
    def _sum_rows(dz: torch.Tensor, out: torch.Tensor) -> None:
        """Each member's sum over the batch [K, B, H] -> [K, H]."""
        torch.sum(dz, dim=1, out=out)

    @staticmethod
    def _member_sums(t: torch.Tensor) -> torch.Tensor:
        """Each member's sum of ``t`` [n, ...] -> [n]."""
        return t.sum(tuple(range(1, t.dim())))

    def _loss(
        self, z: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each member's mean loss [K] and, with ``grad``, its gradient w.r.t. the logits, by loss segment."""
        losses, grads = [], []
        for name, start, stop in self.losses:
            loss, dz = _loss_and_grad(name, z[start:stop], onehot[start:stop], self._member_sums, grad)
            losses.append(loss)
            grads.append(dz)
        if len(self.losses) == 1:
            return losses[0], grads[0]
        return torch.cat(losses), (torch.cat(grads) if grad else None)


def member_order(configs: Sequence[TrainConfig]) -> list[int]:
    """Indices of ``configs`` ordered so that equal activations, and within them equal losses, are contiguous."""
    activations = list(dict.fromkeys(c.activation for c in configs))
    losses = list(dict.fromkeys(loss_kind(c.loss) for c in configs))
    rank = lambda i: (activations.index(configs[i].activation), losses.index(loss_kind(configs[i].loss)))  # noqa: E731
    return sorted(range(len(configs)), key=rank)


def _initial_model(config: TrainConfig) -> nn.Sequential:
    """``build_model(config)`` with the weights that ``config.seed`` gives it."""
    torch.manual_seed(config.seed)
    return build_model(config)


def _segments(names: list[str]) -> list[tuple[str, int, int]]:
    """Runs of equal names as (name, start, stop)."""
    segments: list[tuple[str, int, int]] = []
    for k, name in enumerate(names):
        if segments and segments[-1][0] == name:
            segments[-1] = (name, segments[-1][1], k + 1)
        else:
            segments.append((name, k, k + 1))
    return segments


def _exact_anywhere(name: str) -> bool:
    return name in EXACT_ANYWHERE


def _loss_and_grad(
    name: str,
    z: torch.Tensor,
    onehot: torch.Tensor,
    sums: Callable[[torch.Tensor], torch.Tensor],
    grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each member's mean loss over the batch [n] and, with ``grad``, its gradient w.r.t. the logits.

    nll sits on a log-softmax output and cross_entropy on logits: the same function of the
    logits. mse compares the softmax probabilities with the one-hot labels. Softmax and
    log-softmax work row by row, the same wherever a row falls; ``sums`` reduces per member.
    """
    batch = z.shape[1]
    if name == "nll":
        loss = -sums(torch.log_softmax(z, dim=-1) * onehot) / batch
        return loss, (torch.softmax(z, dim=-1).sub_(onehot).div_(batch) if grad else None)
    if name == "mse":
        q = torch.softmax(z, dim=-1)
        diff = q - onehot
        loss = sums(diff.square()) / (batch * CLASSES)
        if not grad:
            return loss, None
        dq = diff.mul_(2 / (batch * CLASSES))
        return loss, aten._softmax_backward_data(dq, q, -1, q.dtype)
    raise ValueError(f"loss must be one of nll, cross_entropy, mse, but got loss={name!r}.")


# (forward, backward(grad_out, input, output)) of each hidden activation.
_ACTIVATIONS = {
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
