"""Adadelta, SGD with momentum and Adam over one flat parameter tensor.

The same arithmetic as ``torch.optim``'s single-tensor implementations (tests compare
them step by step), without their per-step Python overhead, which for a network of
100k parameters costs more than the update itself.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch

ADADELTA_RHO, ADADELTA_EPS = 0.9, 1e-6  # torch.optim.Adadelta defaults
SGD_MOMENTUM = 0.9
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam defaults
# Elements per block of the CPU update: its ~8 arrays of a block stay in the caches. Over a
# whole 18-network group (2.4M parameters, beyond the L3), blocks of 64k took 11 ms a step
# against 30 ms in one pass (benchmarks/optimizer_update.py). Groups now train in slices whose
# arrays stay in the L3 (``trainer.steps``), where fewer, larger blocks save calls: blocks of 1M
# (one per layer tensor of a slice) took 5-7% less CPU time than 64k over the grid sample's groups
# (``benchmarks/grid_throughput.py --compare-blocks``, docs/performance.md).
CPU_BLOCK = 1 << 20
# torch.compile of the Adadelta update (one loop over memory instead of ten passes), measured
# on the 2-core EPYC: 4-35 s to compile (warm or cold inductor cache, machine load), then
# 2.6-3.5 ms a step over 1.8M parameters against 8.4-27 ms eager, some 3-13 ns saved per
# parameter and step: it paid back after about 1e10 parameter-steps of a worker's work. Rounding as
# the eager update does (``_adadelta_compiled``) keeps about 0.4 of that saving (side by side in
# ``benchmarks/optimizer_update.py``: 0.76 of the eager blocks' time against 0.39), hence 3e10.
COMPILE_PAYBACK_ELEMENT_STEPS = 3e10
# Elements per block of the compiled update: one loop per block, a block's ~5 arrays within the
# 32 MB L3. Over a group's 2.4M parameters, on the 2-core EPYC: 3.2 ms a step in blocks of 1M,
# 4.2 ms in blocks of 256k, 3.2-9.6 ms in one loop (the arrays spill out of the L3 beyond ~1.5M).
COMPILED_BLOCK = 1 << 20

_compiled: dict[str, Callable[..., None]] = {}
_use_compiled = False


def compile_updates(enabled: bool = True) -> None:
    """Run later optimizers' Adadelta updates on the CPU as one compiled loop (``torch.compile``).

    A process-wide switch, to be set once per worker before it trains. The compiled loop
    gives the eager update's numbers bit for bit (``_adadelta_compiled``), so the switch changes
    the speed, not a point's value; ``search.run.plan.compile_update`` checks that equality on
    the machine before a worker trains with it. Needs a C++ compiler at run time.
    """
    global _use_compiled
    _use_compiled = enabled


def worth_compiling(element_steps: float) -> bool:
    """Whether a worker's work, in parameters x optimizer steps, is beyond the compile's payback point."""
    return element_steps > COMPILE_PAYBACK_ELEMENT_STEPS


def adadelta_update(
    param: torch.Tensor, g: torch.Tensor, square_avg: torch.Tensor, acc_delta: torch.Tensor, lr: torch.Tensor
) -> None:
    """One Adadelta step in place, ``torch.optim.Adadelta``'s arithmetic at per-element rates."""
    square_avg.mul_(ADADELTA_RHO).addcmul_(g, g, value=1 - ADADELTA_RHO)
    # sqrt(a) / sqrt(b) as sqrt(a / b): one square root per element instead of two.
    delta = acc_delta.add(ADADELTA_EPS).div_(square_avg.add(ADADELTA_EPS)).sqrt_().mul_(g)
    acc_delta.mul_(ADADELTA_RHO).addcmul_(delta, delta, value=1 - ADADELTA_RHO)
    param.addcmul_(delta, lr, value=-1)


@torch.library.custom_op("trainer::sqrt", mutates_args=())
def _aten_sqrt(x: torch.Tensor) -> torch.Tensor:
    """ATen's own square root, kept whole in a compiled graph (inductor calls it, not its own loop)."""
    return torch.sqrt(x)


@_aten_sqrt.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _adadelta_compiled(
    param: torch.Tensor, g: torch.Tensor, square_avg: torch.Tensor, acc_delta: torch.Tensor, lr: torch.Tensor
) -> None:
    """``adadelta_update`` written for ``torch.compile`` so that its loops round as the eager passes do.

    Each operation as the eager CPU kernels compute it (``tests/trainer/test_optim.py`` checks
    the two bit for bit over many steps of 1M-element blocks). Left to itself, inductor differs
    in two places: ``addcmul_(t1, t2, value=v)`` runs in ATen's vectorised kernel as one fused
    multiply-add ``fma(v * t1, t2, self)``, which inductor would take as ``fma(t1 * t2, v, self)``;
    and ATen's square root (MKL's vector one) is not always the correctly rounded one that
    inductor's loop takes, so the root stays ATen's (``_aten_sqrt``), between two fused loops.
    """
    fma = torch.ops.prims.fma  # one rounding: a * b + c (registered by ``_compiled_adadelta``)
    square_avg_new = fma(g * (1 - ADADELTA_RHO), g, square_avg * ADADELTA_RHO)
    delta = _aten_sqrt((acc_delta + ADADELTA_EPS) / (square_avg_new + ADADELTA_EPS)) * g
    acc_delta_new = fma(delta * (1 - ADADELTA_RHO), delta, acc_delta * ADADELTA_RHO)
    square_avg.copy_(square_avg_new)
    acc_delta.copy_(acc_delta_new)
    param.copy_(fma(-delta, lr, param))  # addcmul_(delta, lr, value=-1): (-1 * delta) exactly -delta


def _compiled_adadelta() -> Callable[..., None]:
    # dynamic=True: one compiled loop serves every group size of the worker.
    if "adadelta" not in _compiled:
        import torch._inductor.inductor_prims  # noqa: F401 - registers torch.ops.prims.fma (seconds to import)

        _compiled["adadelta"] = torch.compile(_adadelta_compiled, dynamic=True)
    return _compiled["adadelta"]


def compiled_rounds_as_eager(elements: int = 4099, steps: int = 3) -> bool:
    """Whether the compiled Adadelta update gives the eager one's numbers bit for bit on a probe
    of random blocks (compiling it first if need be).

    ``_adadelta_compiled`` copies the rounding of ATen's CPU kernels as built for this machine's
    vector units; where a build or machine rounds otherwise, the eager update must serve.
    """
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(elements, generator=generator) for _ in range(2)]
    lr = torch.rand(elements, generator=generator) * 10
    states = [[t.clone() for t in (start[0], start[1].abs(), torch.zeros(elements))] for _ in range(2)]
    for step in range(steps):
        g = torch.randn(elements, generator=generator) * 10.0 ** (step - 1)
        with torch.no_grad():
            adadelta_update(states[0][0], g, states[0][1], states[0][2], lr)
            _compiled_adadelta()(states[1][0], g, states[1][1], states[1][2], lr)
    return all(torch.equal(a, b) for a, b in zip(*states, strict=True))


class FlatOptimizer:
    """Updates ``param`` in place from ``grad`` (both flat tensors) at given learning rates.

    The rate is a tensor shaped like ``param``, giving each element its own: the members
    of a group train at different rates, and a network alone takes the same path so that
    its numbers are bit for bit those it has in a group. So is ``weight_decay`` when given
    as a tensor.
    """

    def __init__(
        self, name: str, param: torch.Tensor, grad: torch.Tensor, weight_decay: float | torch.Tensor = 0.0
    ) -> None:
        if name not in ("adadelta", "sgd", "adam"):
            raise ValueError(f"optimizer must be one of adadelta, sgd, adam, but got optimizer={name!r}.")
        self.name, self.param, self.grad = name, param, grad
        # Weight decay, like the rate, is per element (members of a group decay differently); a
        # number becomes such a tensor so that a network alone takes its group's path.
        if not isinstance(weight_decay, torch.Tensor):
            weight_decay = torch.full_like(param, weight_decay) if weight_decay else None
        self.weight_decay = weight_decay
        self._compiled: Callable[..., None] | None = None  # else the method ``_<name>`` of this optimizer or its part
        # On the CPU the update runs block by block, each block's ten or so element-wise passes
        # while it sits in the cache: element-wise arithmetic rounds the same wherever an
        # element falls, so the numbers are those of one pass over the whole tensor. The
        # compiled update (``compile_updates``) is one loop over memory already, so it takes
        # larger blocks; it is not used on GPUs, where it is untested (CUDA graphs already
        # remove launch costs).
        self._block = CPU_BLOCK if param.device.type == "cpu" else max(len(param), 1)
        if _use_compiled and name == "adadelta" and param.device.type == "cpu":
            self._compiled, self._block = _compiled_adadelta(), COMPILED_BLOCK
        self._blocks = self._blocks_of([slice(0, len(param))])
        self.steps = 0
        self._a = torch.zeros_like(param)  # Adadelta: square_avg; SGD: momentum; Adam: exp_avg
        self._b = torch.zeros_like(param)  # Adadelta: acc_delta; Adam: exp_avg_sq

    def part(self, ranges: list[slice]) -> FlatOptimizer:
        """This optimizer over the elements in ``ranges`` only, sharing its tensors and state.

        Its steps update those elements in place (a group trained a slice of members at a
        time, ``trainer.steps``); it counts its steps from this one's, and ``steps`` must be
        set back here once the part's steps are done.
        """
        part = copy.copy(self)
        part._blocks = self._blocks_of(ranges)
        return part

    def _blocks_of(self, ranges: list[slice]) -> list[slice]:
        return [
            slice(start, min(start + self._block, r.stop))
            for r in ranges
            for start in range(r.start, r.stop, self._block)
        ]

    def state_dict(self) -> dict[str, object]:
        """The step count and the running averages (on the CPU), for a checkpoint."""
        return {"steps": self.steps, "a": self._a.cpu(), "b": self._b.cpu()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps = state["steps"]
        self._a.copy_(state["a"])
        self._b.copy_(state["b"])

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        self.steps += 1
        update = self._compiled or getattr(self, f"_{self.name}")
        for part in self._blocks:
            g = self.grad[part]
            if self.weight_decay is not None:
                g = g.addcmul(self.param[part], self.weight_decay[part])
            update(self.param[part], g, self._a[part], self._b[part], lr[part])

    def _adadelta(
        self, param: torch.Tensor, g: torch.Tensor, square_avg: torch.Tensor, acc_delta: torch.Tensor, lr: torch.Tensor
    ) -> None:
        adadelta_update(param, g, square_avg, acc_delta, lr)

    def _sgd(self, param: torch.Tensor, g: torch.Tensor, buf: torch.Tensor, _: torch.Tensor, lr: torch.Tensor) -> None:
        if self.steps == 1:
            buf.copy_(g)
        else:
            buf.mul_(SGD_MOMENTUM).add_(g)
        param.addcmul_(buf, lr, value=-1)

    def _adam(
        self, param: torch.Tensor, g: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, lr: torch.Tensor
    ) -> None:
        beta1, beta2 = ADAM_BETAS
        exp_avg.lerp_(g, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**self.steps)).add_(ADAM_EPS)
        step_size = lr.div(1 - beta1**self.steps)
        param.addcmul_(exp_avg.div(denom), step_size, value=-1)
