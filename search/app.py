"""What each ``python -m search`` subcommand does; the only module here that prints."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from search import atomic, records
from search._startup import quiet_optuna
from search.analysis.effects import gather_effects
from search.analysis.effects_text import to_json, to_text
from search.analysis.effects_text import write_csv as write_effects_csv
from search.analysis.report import render_report
from search.analysis.summary import summarize, write_csv
from search.analysis.text import best_line, format_accuracy, format_params
from search.run.budget import Counts
from search.run.outputs import save_study_outputs
from search.run.plan import available_memory, plan_compile, plan_workers
from search.run.processes import run_workers
from search.run.progress import Progress
from search.run.study import StudyError, prepare
from search.space import search_space
from search.spec import StudySpec
from search.storage import artifact_dir, failure_message, mask_arg, mask_url, open_reader, open_store
from trainer import load_mnist, resolve_device, split


def run_study(spec: StudySpec, argv: list[str]) -> int:
    """Run the study to its budget; returns the exit code (130 when interrupted)."""
    quiet_optuna()
    # Bad data or a bad split fail here, before anything is written to the storage.
    splits = split(load_mnist(spec.data_dir, "cpu", spec.download), spec.validation, spec.limit_train, spec.limit_test)
    device = resolve_device(spec.device)
    if device.type == "cuda" and spec.workers > 1 and not mps_running():
        print(
            f"note: {spec.workers} workers share one GPU but run its kernels one process at a time; "
            "start NVIDIA MPS first (nvidia-cuda-mps-control -d) to let them run side by side",
            file=sys.stderr,
        )
    store = open_store(spec.storage, spec.heartbeat, spec.artifacts)
    study = prepare(spec, store)
    counts = Counts.of(store.storage, study)
    workers, note = plan_workers(spec.workers, spec.budget - counts.finished, available_memory())
    if note:
        print(note, file=sys.stderr)
    work = spec.parameter_steps(len(splits.train_y), spec.budget - counts.finished) / workers
    compiled, note = plan_compile(spec.compile, device.type == "cpu", work)
    if note:
        print(note, file=sys.stderr)
    spec = spec.replace(workers=workers, compile="on" if compiled else "off")
    best = summarize(study).best if counts.finished else None
    print(
        f"study {spec.name!r} ({spec.kind}, pruner {spec.pruner_name}) in {mask_url(spec.storage)}: "
        f"{counts.finished}/{spec.budget} trials finished, {spec.workers} worker(s)",
        file=sys.stderr,
    )
    progress = Progress(spec.kind, spec.budget, counts.finished, best.value if best else None)
    interrupted = False
    try:
        run_workers(spec, progress, store)
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
    save_study_outputs(study, [p.name for p in spec.space])
    summary = summarize(study)
    if summary.best is not None:
        print(f"best: {best_line(summary.best)}  {format_params(summary.best.params)}", file=sys.stderr)
    done = records.outcomes(study.get_trials(deepcopy=False))
    if interrupted:
        print(
            f"interrupted: {done.describe()}; no trial is left running; {_left(spec, done)}; "
            f"resume with: {resume_command(argv)}",
            file=sys.stderr,
        )
        return 130
    print(
        f"done: {done.describe()}; look at it with: python -m search dashboard"
        + ("" if spec.storage == "sqlite:///studies.db" else f" --storage {shlex.quote(mask_url(spec.storage))}"),
        file=sys.stderr,
    )
    return 0


def _left(spec: StudySpec, done: records.Outcomes) -> str:
    """What a resumed run does: which points run again, how many trials are left."""
    left = f"{max(spec.budget - done.finished, 0)} of {spec.budget} trials are left"
    if spec.points() is None:
        return left
    return f"{done.waiting} interrupted point{'s' if done.waiting != 1 else ''} will run again, {left}"


def resume_command(argv: list[str]) -> str:
    """The command that resumes this run, every storage URL in it masked (``--storage URL`` and ``--storage=URL``)."""
    return "python -m search " + " ".join(shlex.quote(mask_arg(a)) for a in argv)


def mps_running() -> bool:
    """Whether NVIDIA's Multi-Process Service control daemon is up (its pipe exists)."""
    pipes = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps"))
    return (pipes / "control").exists()


def load(storage_url: str, study_name: str) -> optuna.Study:
    """Load a study by name to read it (nothing is created or written), or fail with the names that exist."""
    storage = open_reader(storage_url)
    names = optuna.get_all_study_names(storage) if storage is not None else []
    if study_name not in names:
        raise StudyError(
            f"no study named {study_name!r} in {mask_url(storage_url)}; studies there: " + (", ".join(names) or "none")
        )
    study = optuna.load_study(study_name=study_name, storage=storage)
    if (foreign := _foreign(study)) is not None:
        raise StudyError(
            f"study {study_name!r} {foreign}; this service reads studies that maximize one objective "
            "(validation accuracy)"
        )
    return study


def _foreign(study: optuna.Study) -> str | None:
    """How a study is not one this service reads (several objectives, or a minimized one); None when it is."""
    directions = study.directions
    if len(directions) != 1:
        return f"has {len(directions)} objectives ({', '.join(d.name.lower() for d in directions)})"
    # A minimized study without a complete trial has no best to misread: it says so like any other.
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if directions[0] != optuna.study.StudyDirection.MAXIMIZE and complete:
        return "minimizes its objective"
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


def report(storage_url: str, study_name: str, out: str | None) -> int:
    study = load(storage_url, study_name)
    path = out or f"reports/{study_name}.html"
    with _writing(path):
        atomic.write_text(path, render_report(study, _space_params(study)))
    print(f"wrote {path}", file=sys.stderr)
    return 0


def effects(storage_url: str, study_name: str, fmt: str, seed: int) -> int:
    """Print which choices matter in the study, with intervals, as a table, JSON or CSV."""
    study = load(storage_url, study_name)
    try:
        # Infinite or NaN values (a foreign study's) make numpy warn; the output says what became of them.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            found = gather_effects(study, seed)
    except ValueError as e:
        raise StudyError(str(e)) from e
    if fmt == "json":
        data, replaced = _strict_json(to_json(found))
        print(json.dumps(data, indent=2, allow_nan=False))
        if replaced:
            print(f"note: {replaced} non-finite number(s) (NaN or infinity) written as null", file=sys.stderr)
    elif fmt == "csv":
        write_effects_csv(found, sys.stdout)
    else:
        print(to_text(found))
    return 0


def best(storage_url: str, study_name: str, artifacts: str | None = None) -> int:
    summary = summarize(load(storage_url, study_name))
    if summary.best is None:
        raise StudyError(f"study {study_name!r} has no complete trial yet")
    t = summary.best
    print(best_line(t))
    for k, v in t.params.items():
        print(f"  {k} = {v}")
    if records.MODEL_ARTIFACT in t.user_attrs:
        artifact_id = t.user_attrs[records.MODEL_ARTIFACT]
        print(
            f"  model artifact: {artifact_id}, file {artifact_dir(storage_url, artifacts) / artifact_id} "
            "(a state dict; torch.load(path, weights_only=True))"
        )
    return 0


def list_studies(storage_url: str) -> int:
    storage = open_reader(storage_url)
    names = optuna.get_all_study_names(storage) if storage is not None else []
    if not names:
        print(f"no studies in {mask_url(storage_url)}", file=sys.stderr)
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        if (foreign := _foreign(study)) is not None:
            counts = records.outcomes(study.get_trials(deepcopy=False)).describe(by_state=True)
            print(f"{name}  (not this service's: {foreign})  {counts}")
            continue
        s = summarize(study)
        best_text = f"best {format_accuracy(s.best.value)}" if s.best is not None else "no best yet"
        print(f"{s.name}  ({s.kind})  {s.outcomes.describe(by_state=True)}  {best_text}")
    return 0


def export(storage_url: str, study_name: str, out: str) -> int:
    study = load(storage_url, study_name)
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
    try:  # importing optuna-dashboard takes a while: a Ctrl-C then is a stop like any other
        from search.dashboard import serve

        serve(storage_url, host, port, artifacts, allow_writes, allowed_hosts)
    except KeyboardInterrupt:
        print("dashboard stopped", file=sys.stderr)
