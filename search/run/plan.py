"""How many workers a study starts, and whether they compile the CPU's Adadelta update."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from trainer import optim

# Eight workers held 7.5 GB on a one-trial budget (torch, MNIST on the device, Optuna): about 1 GB each.
WORKER_MEMORY_BYTES = 1 << 30


def default_workers(networks: int | None, cores: int) -> int:
    """Workers to start when ``--workers`` is not given: one for a sampler's study (``networks`` None);
    for grid and oat, one per core while the study has networks (whole parts of a group) for them."""
    return 1 if networks is None else max(1, min(cores, networks))


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_workers(asked: int, remaining: int, available_bytes: int | None) -> tuple[int, str | None]:
    """How many workers to start, and a one-line note when that differs from ``asked`` or memory is short.

    Never more workers than trials remain (at least one, to end the study cleanly); a warning,
    not a cap, when the workers' expected memory (``WORKER_MEMORY_BYTES`` each) exceeds
    ``available_bytes``, since the estimate is rough.
    """
    workers = max(1, min(asked, remaining))
    notes = []
    if workers < asked:
        notes.append(f"{asked} workers asked, {remaining} trial(s) left: starting {workers}")
    if available_bytes is not None and workers * WORKER_MEMORY_BYTES > available_bytes:
        notes.append(
            f"{workers} workers need about {workers * WORKER_MEMORY_BYTES / 1e9:.1f} GB, "
            f"{available_bytes / 1e9:.1f} GB is available: pass fewer --workers if memory runs out"
        )
    return workers, ("note: " + "; ".join(notes)) if notes else None


def plan_compile(asked: str, cpu: bool, work_per_worker: float) -> tuple[bool, str | None]:
    """Whether workers compile the CPU's Adadelta update, and a one-line note when they do.

    ``auto`` compiles on the CPU when a worker's share of the study, in parameters x
    optimizer steps, is beyond the compile's payback (``trainer.optim.worth_compiling``);
    on a GPU nothing is compiled (CUDA graphs already remove the launches).
    """
    if not cpu or asked == "off" or (asked == "auto" and not optim.worth_compiling(work_per_worker)):
        return False, None
    times = work_per_worker / optim.COMPILE_PAYBACK_ELEMENT_STEPS
    if times >= 1.5:
        worth = f"a worker's share of this study repays that about {times:,.0f} times over"
    elif times >= 1:
        worth = "a worker's share of this study about repays that"
    else:
        worth = "a worker's share of this study is too short to repay that"
    return True, (
        f"note: each worker compiles the Adadelta update first (5-35 s), then trains faster; {worth}; "
        "--compile off skips it"
    )


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def compile_update(note: Callable[[str], None]) -> None:
    """Switch this worker to the compiled Adadelta update and compile it now; stay eager where it
    fails or where its numbers are not the eager update's bit for bit (a point's value must not
    depend on the mode)."""
    # Inductor's C++ build warns that no CUDA runtime is found, which says nothing on a CPU worker.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        same = optim.compiled_rounds_as_eager()
    except Exception as e:  # noqa: BLE001 - no C++ compiler, an inductor error...: the eager update serves
        note(f"the Adadelta update could not be compiled ({compile_cause(e)}); training with the eager one")
        return
    if not same:
        note("the compiled Adadelta update rounds otherwise than the eager one here; training with the eager one")
        return
    optim.compile_updates()


def compile_cause(error: BaseException) -> str:
    """The innermost cause of a compile's failure in one line (inductor's own first line only says it raised)."""
    while (inner := getattr(error, "inner_exception", None) or error.__cause__) is not None:
        error = inner
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = next((line for line in lines if not line.endswith(":")), lines[-1] if lines else "")
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__
