"""The flat optimizers against torch.optim as the reference, step by step (within rtol 1e-6, atol 1e-7)."""

from __future__ import annotations

import pytest
import torch

from trainer import optim
from trainer.optim import FlatOptimizer

REFERENCES = {
    "adadelta": lambda p, lr, wd: torch.optim.Adadelta([p], lr=lr, weight_decay=wd, foreach=False),
    "sgd": lambda p, lr, wd: torch.optim.SGD([p], lr=lr, momentum=0.9, weight_decay=wd, foreach=False),
    "adam": lambda p, lr, wd: torch.optim.Adam([p], lr=lr, weight_decay=wd, foreach=False),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_matches_torch_optim(name: str, weight_decay: float) -> None:
    torch.manual_seed(0)
    start = torch.randn(1000)
    ours, grad = start.clone(), torch.zeros(1000)
    reference = torch.nn.Parameter(start.clone())
    optimizer = FlatOptimizer(name, ours, grad, weight_decay)
    torch_optimizer = REFERENCES[name](reference, 0.5, weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(torch_optimizer, step_size=2, gamma=0.7)
    for step in range(6):
        g = torch.randn(1000)
        grad.copy_(g)
        reference.grad = g.clone()
        optimizer.step(torch.full_like(ours, 0.5 * 0.7 ** (step // 2)))
        torch_optimizer.step()
        schedule.step()
        torch.testing.assert_close(ours, reference.detach(), rtol=1e-6, atol=1e-7)


def test_unknown_optimizer_is_refused() -> None:
    with pytest.raises(ValueError, match="'rmsprop'"):
        FlatOptimizer("rmsprop", torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_blocks_give_the_one_pass_update_bit_for_bit(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU update runs in cache-sized blocks; an odd block size must not change a bit."""
    torch.manual_seed(0)
    start, grads = torch.randn(1000), [torch.randn(1000) for _ in range(4)]
    results = []
    for block in (1000, 37):
        monkeypatch.setattr(optim, "CPU_BLOCK", block)
        param, grad = start.clone(), torch.zeros(1000)
        optimizer = FlatOptimizer(name, param, grad, torch.full_like(param, 0.01))
        assert len(optimizer._blocks) == -(-1000 // block)
        for g in grads:
            grad.copy_(g)
            optimizer.step(torch.full_like(param, 0.5))
        results.append(param)
    assert torch.equal(*results)


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optim, "_use_compiled", False)
    optim.compile_updates()


@pytest.mark.slow  # torch.compile takes 6-35 s on the 2-core CPU
def test_the_compiled_adadelta_matches_torch_optim(compiled: None) -> None:
    test_matches_torch_optim("adadelta", 0.01)
    optimizer = FlatOptimizer("adadelta", torch.zeros(10), torch.zeros(10))
    assert optimizer._compiled is optim._compiled["adadelta"]


def _cpp_compiler() -> bool:
    from torch._inductor import cpp_builder

    try:
        return bool(cpp_builder.get_cpp_compiler())
    except Exception:  # noqa: BLE001 - inductor's own search for one, whatever it raises
        return False


@pytest.mark.slow  # torch.compile takes 6-35 s on the 2-core CPU
def test_the_compiled_adadelta_gives_the_eager_numbers_bit_for_bit_over_full_size_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether a worker compiles must not change a point's value: the same steps, compiled or not,
    over two full blocks and a part one (views at offsets into the flat tensor), bit for bit."""
    if not _cpp_compiler():
        pytest.skip("no C++ compiler for inductor")
    n, steps = 2 * optim.COMPILED_BLOCK + 4099, 120
    assert optim.CPU_BLOCK == optim.COMPILED_BLOCK == 1 << 20  # the blocks a worker takes
    torch.manual_seed(0)
    start, lr = torch.randn(n), torch.rand(n) * 10  # rates of a grid's range and beyond
    decay = torch.full_like(start, 0.01)
    runs = []
    for compiled in (False, True):
        monkeypatch.setattr(optim, "_use_compiled", compiled)
        param, grad = start.clone(), torch.zeros(n)
        optimizer = FlatOptimizer("adadelta", param, grad, decay)
        assert (optimizer._compiled is not None) is compiled and len(optimizer._blocks) == 3
        generator = torch.Generator().manual_seed(1)
        for step in range(steps):
            # gradients from 1e-3 to 1e2, as a run's first steps and its late ones give
            grad.copy_(torch.randn(n, generator=generator) * 10.0 ** (step % 6 - 3))
            optimizer.step(lr)
        runs.append((param, optimizer._a, optimizer._b))
    for eager, compiled in zip(*runs, strict=True):
        assert torch.equal(eager, compiled), int((eager != compiled).sum())


@pytest.mark.slow  # torch.compile takes 6-35 s on the 2-core CPU
def test_the_probe_tells_a_compiled_update_that_rounds_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch.compile`` of the eager update itself rounds otherwise (one fused multiply-add in another
    order, another square root): the check a worker runs before compiling refuses it."""
    if not _cpp_compiler():
        pytest.skip("no C++ compiler for inductor")
    assert optim.compiled_rounds_as_eager()
    monkeypatch.setattr(optim, "_compiled", {"adadelta": torch.compile(optim.adadelta_update, dynamic=True)})
    assert not optim.compiled_rounds_as_eager()


def test_compiling_pays_back_only_beyond_a_worker_of_grid_work() -> None:
    baseline_run = 101_770 * 782 * 14  # parameters x steps of the 14-epoch baseline
    assert not optim.worth_compiling(baseline_run)
    assert optim.worth_compiling(18 * 101_770 * 782 * 25 * 10)  # ten grid groups of that shape
