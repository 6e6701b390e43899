"""What each ``python -m search`` subcommand does; the only module here that prints."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from search import atomic, records
from search._startup import quiet_optuna
from search.analysis.summary import summarize, write_csv
from search.analysis.text import best_line, format_accuracy, format_params
from search.run.study import StudyError, data_identity, prepare
from search.space import search_space
from search.storage import (
    StorageError,
    artifact_dir,
    failure_message,
    mask_arg,
    mask_url,
    open_reader,
    refused_write,
)

if TYPE_CHECKING:
    from search.run.interrupts import Interrupts
    from search.run.progress import Progress
    from search.spec import StudySpec
    from search.storage import Store

# The readers (list, best, export) start in a fraction of a second: torch, plotly and the
# dashboard are imported by the commands that use them.


def run_study(spec: StudySpec, argv: list[str]) -> int:
    """Run the study to its budget; returns the exit code (130 when interrupted)."""
    # Loading torch and the data takes seconds before the first line below: said at once to a
    # person watching. Not into a pipe or a log, where bad input stays one line (docs/guarantees.md).
    if sys.stderr.isatty():
        print("starting: loading torch and the data", file=sys.stderr)
    from search.run.budget import Counts
    from search.run.interrupts import Interrupts
    from search.run.plan import available_memory, cores, default_workers, plan_compile, plan_workers
    from search.run.progress import Progress
    from search.storage import open_store
    from trainer import load_mnist, resolve_device, split

    quiet_optuna()
    # Bad data or a bad split fail here, before anything is written to the storage.
    mnist = load_mnist(spec.data_dir, "cpu", spec.download)
    splits = split(mnist, spec.validation, spec.limit_train, spec.limit_test)
    data = data_identity(mnist)  # the study is these images: a rerun on others is refused
    device = resolve_device(spec.device)
    try:
        store = open_store(spec.storage, spec.heartbeat, spec.artifacts)
        study = prepare(spec, store, data)
        counts = Counts.of(store.storage, study)
    except StorageError:
        raise  # a storage that cannot be opened at all: its one line, nothing to resume
    except Exception as e:  # one that fails while the study is made (disk full): as a failure mid-run
        message = failure_message(spec.storage, e)
        if message is None or refused_write(e):  # a read-only storage: its one line, nothing to resume
            raise
        print(f"error: {message}\nresume with: {resume_command(argv)}", file=sys.stderr)
        return 1
    remaining = spec.budget - counts.finished
    asked = spec.workers
    if asked is None:  # grid and oat on the CPU: one worker per core, one thread each
        asked = min(default_workers(spec.networks() if device.type == "cpu" else None, cores()), max(remaining, 1))
    if device.type == "cuda" and asked > 1 and not mps_running():
        print(
            f"note: {asked} workers share one GPU but run its kernels one process at a time; "
            "start NVIDIA MPS first (nvidia-cuda-mps-control -d) to let them run side by side",
            file=sys.stderr,
        )
    workers, note = plan_workers(asked, remaining, available_memory())
    if note:
        print(note, file=sys.stderr)
    work = spec.parameter_steps(len(splits.train_y), spec.budget - counts.finished) / workers
    compiled, note = plan_compile(spec.compile, device.type == "cpu", work)
    if note:
        print(note, file=sys.stderr)
    spec = spec.replace(workers=workers, compile="on" if compiled else "off")
    before = records.outcomes(study.get_trials(deepcopy=False))
    best = summarize(records.accuracy_study(study)).best if counts.finished else None
    print(
        f"study {spec.name!r} ({spec.kind}, pruner {spec.pruner_name}) in {mask_url(spec.storage)}: "
        f"{counts.finished}/{spec.budget} trials finished, {spec.workers} worker(s) of {spec.threads} thread(s)",
        file=sys.stderr,
    )
    plan = _plan(spec, study, len(splits.train_y))
    if plan is not None:
        print(plan[0], file=sys.stderr)
    progress = Progress(spec.kind, spec.budget, counts.finished, best.value if best else None,
                        work=plan[1] if plan is not None else None)  # fmt: skip
    # Installed until the last line: a second Ctrl-C, or one while the figures are saved, cuts neither.
    interrupts = Interrupts(on_stop=progress.stopping).install()
    try:
        return _run_and_close(spec, argv, study, store, progress, interrupts, before)
    finally:
        interrupts.uninstall()


def _run_and_close(
    spec: StudySpec,
    argv: list[str],
    study: optuna.Study,
    store: Store,
    progress: Progress,
    interrupts: Interrupts,
    before: records.Outcomes,
) -> int:
    """Run the workers, then save the study's figures and say what this run did and where the study stands."""
    from search.run.processes import run_workers

    interrupted = False
    try:
        run_workers(spec, progress, store, interrupts)
    except KeyboardInterrupt:
        interrupted = True
    except StudyError as e:  # a worker process failed; it closed its own trials and said how
        progress.close()
        print(f"error: {e}\nresume with: {resume_command(argv)}", file=sys.stderr)
        return 1
    except Exception as e:
        message = failure_message(spec.storage, e)
        if message is None:
            raise
        progress.close()
        print(f"error: {message}", file=sys.stderr)
        print(f"resume with: {resume_command(argv)}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    interrupts.hold()  # never released: a signal from here on is said (once) and ignored
    from search.run.outputs import save_study_outputs  # plotly and the dashboard: seconds, not before the run

    save_study_outputs(study, [p.name for p in spec.space])
    summary = summarize(records.accuracy_study(study))
    if summary.best is not None:
        print(f"best: {best_line(summary.best)}  {format_params(summary.best.params)}", file=sys.stderr)
    if spec.multi_objective:
        print(f"front: {len(study.best_trials)} trial(s) of {', '.join(spec.metric_names)}: "
              f"python -m search best --study-name {shlex.quote(spec.name)}", file=sys.stderr)  # fmt: skip
    done = records.outcomes(study.get_trials(deepcopy=False))
    print(this_run(before, done, spec.points() is not None), file=sys.stderr)
    if interrupted:
        print(
            f"interrupted: {_study_left(spec, done)}; {_still_running(done.running)}; "
            f"resume with: {resume_command(argv)}",
            file=sys.stderr,
        )
        return 130
    print(
        f"done: {_study_left(spec, done)}; look at it with: python -m search dashboard"
        + ("" if spec.storage == "sqlite:///studies.db" else f" --storage {shlex.quote(mask_url(spec.storage))}"),
        file=sys.stderr,
    )
    return 0


def _still_running(running: int) -> str:
    """What an interrupted run left running: nothing, or the trials of workers that did not stop in time."""
    if not running:
        return "no trial is left running"
    return (
        f"{running} trial{'s' if running != 1 else ''} of a worker that did not stop in time "
        f"{'are' if running != 1 else 'is'} left running: the rerun re-queues "
        f"{'them' if running != 1 else 'it'} once {'their' if running != 1 else 'its'} heartbeat is stale"
    )


def _plan(spec: StudySpec, study: optuna.Study, images: int) -> tuple[str, float] | None:
    """What a grid or oat study has left to train, in a line, and its cost (``search.run.cost``); None for samplers."""
    from search.run.cost import plan
    from trainer import TrainConfig

    points = spec.points()
    if points is None:
        return None
    finished = {records.point(t) for t in study.get_trials(deepcopy=False, states=records.FINISHED_STATES)}
    left = [p for i, p in enumerate(points) if i not in finished][: max(spec.budget - len(finished), 0)]
    base = TrainConfig(seed=spec.seed)
    configs = [base.replace(**p).replace(seed=spec.seed + k) for p in left for k in range(spec.seeds)]
    found = plan(configs, images)
    words = "left to train" if finished else "to train"
    seeds = f" under {spec.seeds} seeds" if spec.seeds > 1 else ""
    return (
        f"{words}: {len(left):,} trials{seeds} in {_count(found.groups, 'group')} of one shape and batch size, "
        f"{_count(found.networks, 'network')} in all (points that differ only in epochs or nll/cross_entropy "
        "are one network)",
        found.units,
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def this_run(before: records.Outcomes, after: records.Outcomes, points: bool) -> str:
    """``this run: 12 trials finished (3 pruned), 81 stopped (...), 0 failed``: what this run did alone."""
    finished, pruned = after.finished - before.finished, after.pruned - before.pruned
    stopped = after.requeued + after.interrupted - before.requeued - before.interrupted
    failed = after.failed - before.failed
    parts = [f"{finished:,} trial{'s' if finished != 1 else ''} finished" + (f" ({pruned:,} pruned)" if pruned else "")]
    if stopped:
        again = "their points are queued to run again" if points else "the sampler proposes others"
        parts.append(f"{stopped:,} stopped while running (not failures: {again})")
    parts.append(f"{failed:,} failed")
    return "this run: " + ", ".join(parts)


def _study_left(spec: StudySpec, done: records.Outcomes) -> str:
    """``study 'x': 14 of 2,187 trials finished, 2,173 left (81 queued to run first), 0 failed``."""
    left = max(spec.budget - done.finished, 0)
    text = f"study {spec.name!r}: {done.finished:,} of {spec.budget:,} trials finished"
    if left:
        text += f", {left:,} left" + (f" ({done.waiting:,} queued to run first)" if done.waiting else "")
    return f"{text}, {done.failed:,} failed"


def study_state(outcomes: records.Outcomes) -> str:
    """``2 finished, 160 queued to run, 0 failed``: what a study holds, in words to act on.

    A trial closed as interrupted is an attempt whose point (grid, oat) was queued again: it
    is among the queued ones, not counted apart. A sampler's interrupted trial is not
    queued again and is said apart; neither is a failure.
    """
    o = outcomes
    if not any(dataclasses.astuple(o)):
        return "no trials"
    parts = [f"{o.finished:,} finished" + (f" ({o.pruned:,} pruned)" if o.pruned else "")]
    for count, text in ((o.running, "running"), (o.waiting, "queued to run"), (o.interrupted, "interrupted")):
        if count:
            parts.append(f"{count:,} {text}")
    return ", ".join([*parts, f"{o.failed:,} failed"])


def resume_command(argv: list[str]) -> str:
    """The command that resumes this run, every storage URL in it masked (``--storage URL`` and ``--storage=URL``)."""
    return "python -m search " + " ".join(shlex.quote(mask_arg(a)) for a in argv)


def mps_running() -> bool:
    """Whether NVIDIA's Multi-Process Service control daemon is up (its pipe exists)."""
    pipes = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps"))
    return (pipes / "control").exists()


def load(storage_url: str, study_name: str | None) -> optuna.Study:
    """Load a study to read it (nothing is created or written): by name, or the storage's only one
    when ``study_name`` is None; else fail with the names that exist."""
    storage = open_reader(storage_url)
    names = optuna.get_all_study_names(storage) if storage is not None else []
    where = mask_url(storage_url)
    if study_name is None:
        if len(names) == 1:
            study_name = names[0]
        elif not names:
            raise StudyError(f"no studies in {where}")
        else:
            raise StudyError(f"{len(names)} studies in {where}: pass --study-name, one of " + ", ".join(names))
    if study_name not in names:
        raise StudyError(f"no study named {study_name!r} in {where}; studies there: " + (", ".join(names) or "none"))
    study = optuna.load_study(study_name=study_name, storage=storage)
    if (foreign := _foreign(study)) is not None:
        raise StudyError(
            f"study {study_name!r} {foreign}; this service reads studies that maximize one objective "
            "(validation accuracy), alone or followed by the costs that --objectives names"
        )
    return study


def _foreign(study: optuna.Study) -> str | None:
    """How a study is not one this service reads; None when it is.

    This service's studies maximize validation accuracy, alone or first, with costs to minimize
    after it that the study names (``--objectives``, its identity).
    """
    directions = study.directions
    named = [n for n in str(study.user_attrs.get("objectives", "accuracy")).split(",") if n]
    costs_minimized = all(d == optuna.study.StudyDirection.MINIMIZE for d in directions[1:])
    if len(directions) > 1 and (len(named) != len(directions) or not costs_minimized):
        return f"has {len(directions)} objectives ({', '.join(d.name.lower() for d in directions)})"
    # A minimized study without a complete trial has no best to misread: it says so like any other.
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if directions[0] != optuna.study.StudyDirection.MAXIMIZE and complete:
        return "minimizes its objective" if len(directions) == 1 else "minimizes its first objective"
    return None


def _strict_json(value: Any) -> tuple[Any, int]:
    """``value`` with every non-finite float as None (JSON has no NaN or infinity), and how many were."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, 1
    if isinstance(value, dict):
        pairs = [(k, *_strict_json(v)) for k, v in value.items()]
        return {k: v for k, v, _ in pairs}, sum(n for *_, n in pairs)
    if isinstance(value, (list, tuple)):
        items = [_strict_json(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


def report(storage_url: str, study_name: str | None, out: str | None) -> int:
    from search.analysis.report import render_report, report_path

    study = load(storage_url, study_name)
    path = out or report_path(study.study_name)
    with _writing(path):
        atomic.write_text(path, render_report(study, _space_params(study)))
    print(f"wrote {path}", file=sys.stderr)
    return 0


def effects(
    storage_url: str,
    study_name: str | None,
    fmt: str,
    seed: int,
    margin: float | None = None,
    explain: bool = False,
    effect_of: str | None = None,
) -> int:
    """Print which choices matter in the study, with intervals and verdicts, as a table, JSON or CSV.

    ``margin``: the equivalence margin of the verdicts (None: ``verdicts.MARGIN``); ``explain``:
    the method's long form after the table; ``effect_of``: that parameter's effect within each
    value of the others (a grid's).
    """
    import numpy as np

    from search.analysis.effects import gather_effects
    from search.analysis.effects_text import explain as method_text
    from search.analysis.effects_text import to_json, to_text
    from search.analysis.effects_text import write_csv as write_effects_csv
    from search.analysis.front import cost_changes_text, fronts_json, fronts_text, oat_cost_changes, study_fronts
    from search.analysis.verdicts import MARGIN

    study = records.accuracy_study(load(storage_url, study_name))
    try:
        # Infinite or NaN values (a foreign study's) make numpy warn; the output says what became of them.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            found = gather_effects(study, seed, MARGIN if margin is None else margin, effect_of)
    except ValueError as e:
        raise StudyError(str(e)) from e
    fronts, costs = study_fronts(study), oat_cost_changes(study)
    if fmt == "json":
        whole = {**to_json(found), "fronts": fronts_json(fronts), "oat_costs": [c._asdict() for c in costs]}
        data, replaced = _strict_json(whole)
        print(json.dumps(data, indent=2, allow_nan=False))
        if replaced:
            print(f"note: {replaced} non-finite number(s) (NaN or infinity) written as null", file=sys.stderr)
    elif fmt == "csv":
        extra = [{"section": f"front_{cost}", "trial": p.number, "accuracy": p.accuracy, "cost": p.cost,
                  "parameter": " ".join(f"{k}={v}" for k, v in p.params.items())}
                 for cost, front in fronts.items() for p in front]  # fmt: skip
        extra += [{"section": "oat_cost", "parameter": c.parameter, "value": c.value,
                   "parameters_change": c.parameters, "seconds_change": c.seconds} for c in costs]  # fmt: skip
        write_effects_csv(found, sys.stdout, extra)
    else:
        print(to_text(found))
        if costs:
            print(f"\n{cost_changes_text(costs)}")
        if fronts:
            print(f"\n{fronts_text(fronts)}")
        if explain:
            print(f"\n{method_text()}")
    return 0


def best(storage_url: str, study_name: str | None, artifacts: str | None = None) -> int:
    """Print the best trial; of a multi-objective study, every trial of its Pareto front."""
    study = load(storage_url, study_name)
    if len(study.directions) > 1:
        return _front(study, artifact_dir(storage_url, artifacts))
    summary = summarize(study)
    if summary.best is None:
        raise StudyError(f"study {summary.name!r} has no complete trial yet")
    _print_trial(summary.best, artifact_dir(storage_url, artifacts), study.user_attrs)
    return 0


def _front(study: optuna.Study, folder: Path) -> int:
    front = sorted(study.best_trials, key=lambda t: (t.values[1], t.number))  # cheapest first
    if not front:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet")
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    print(
        f"Pareto front of {study.study_name!r}: {len(front)} trial(s), "
        + ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions, strict=True))
    )
    shown = {"parameters": "{:,.0f}", "training seconds": "{:.2f} s"}
    for t in front:
        objectives = ", ".join(
            f"{n} {shown.get(n, '{:.4f}').format(v)}" for n, v in zip(names, t.values, strict=True)
        )
        print(f"\n{objectives}")
        _print_trial(t, folder, study.user_attrs)
    return 0


def _print_trial(t: optuna.trial.FrozenTrial, folder: Path, study_attrs: dict[str, Any]) -> None:
    print(best_line(t))
    for k, v in t.params.items():
        print(f"  {k} = {v}")
    if records.MODEL_ARTIFACT in t.user_attrs:
        artifact_id = t.user_attrs[records.MODEL_ARTIFACT]
        if (folder / artifact_id).is_file():
            print(f"  model artifact: {artifact_id}, file {folder / artifact_id} "
                  "(a state dict; torch.load(path, weights_only=True))")  # fmt: skip
        else:
            print(
                f"  model artifact: {artifact_id}, not in {folder} (a log keeps no models: the next line retrains it)"
            )
    print(f"  retrain it: {records.trainer_command(t, study_attrs)} --data-dir DIR")


def list_studies(storage_url: str) -> int:
    storage = open_reader(storage_url)
    names = optuna.get_all_study_names(storage) if storage is not None else []
    if not names:
        print(f"no studies in {mask_url(storage_url)}", file=sys.stderr)
    rows = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        if (foreign := _foreign(study)) is not None:
            counts = records.outcomes(study.get_trials(deepcopy=False)).describe(by_state=True)
            rows.append((name, f"(not this service's: {foreign})", "", counts))
            continue
        s = summarize(records.accuracy_study(study))
        best_text = f"best {format_accuracy(s.best.value)}" if s.best is not None else "no best yet"
        objectives = f", {len(study.directions)} objectives" if len(study.directions) > 1 else ""
        rows.append((s.name, f"({s.kind}{objectives})", best_text, study_state(s.outcomes)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)] if rows else []
    for row in rows:
        print("  ".join([*(text.ljust(width) for text, width in zip(row, widths, strict=False)), row[3]]))
    return 0


def export(storage_url: str, study_name: str | None, out: str) -> int:
    """Write the study's trials as CSV to ``out``; ``-`` is standard output."""
    study = load(storage_url, study_name)
    if out == "-":
        rows = write_csv(study, sys.stdout)
        print(f"wrote {rows} trials", file=sys.stderr)
        return 0
    with _writing(out), atomic.replacing(out, "w", newline="") as f:
        rows = write_csv(study, f)
    print(f"wrote {rows} trials to {out}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _writing(path: str) -> Iterator[None]:
    """A file that cannot be written is a user's error: one line naming it (the old file is left as it was)."""
    try:
        yield
    except OSError as e:
        raise StudyError(f"cannot write {path}: {e.strerror or e}") from e


def _space_params(study: optuna.Study) -> list[str]:
    return [p.name for p in search_space(bool(study.user_attrs.get("regularization", False)))]


def serve_dashboard(
    storage_url: str, host: str, port: int, artifacts: str | None, allow_writes: bool, allowed_hosts: list[str]
) -> None:
    # A Ctrl-C ends the dashboard where it lands: as a KeyboardInterrupt it could land in an
    # import run through PyRun_String (CPython then ends the process by SIGINT despite a catch) or
    # in a finalizer run by the garbage collector (CPython prints "Exception ignored" and the
    # dashboard serves on). A dashboard started with SIGINT ignored (in the background) keeps it so.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop_dashboard)
    from search.dashboard import serve  # importing optuna-dashboard takes a while

    serve(storage_url, host, port, artifacts, allow_writes, allowed_hosts)


def _stop_dashboard(signum: int, frame: object) -> None:
    """End the process at once, the stop being said (the storage is read-only, or written in transactions)."""
    print("dashboard stopped", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
