"""The terminal view of a running study: one bar, a line per finished trial, and the running groups' epochs."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import optuna
from tqdm import tqdm

from search import records

if TYPE_CHECKING:
    from trainer.objective import GroupProgress

# What a worker reports: {"type": "trial", "number": ..., "state": ...} when a trial closes,
# {"type": "epoch", "worker": ..., "epoch": ..., ...} (a GroupProgress) after each epoch of a run,
# {"type": "note", "worker": ..., "text": ...} for what a worker has to say once (a fallback it took).
Event = dict[str, Any]
Emit = Callable[[Event], None]
PLAIN_EPOCH_SECONDS = 5.0  # off a terminal, at most one epoch line per worker this often
ETA_SMOOTHING = 0.3  # each new estimate moves the shown ETA this share of the way from its countdown


@dataclass
class _Running:
    """A worker's running group as last reported."""

    first_trial: int
    trials: int
    fraction: float
    told: int = 0  # its trials already closed (they count as finished, not as running)
    restored: float = 0.0  # the share of the group a checkpoint restored: done, but not by this run

    @property
    def open_work(self) -> float:
        """The group's done share, in trials, for those of its trials still open."""
        return self.fraction * max(self.trials - self.told, 0)

    @property
    def work_here(self) -> float:
        """``open_work`` less what the checkpoint restored: what this run trained."""
        return max(self.fraction - self.restored, 0.0) * max(self.trials - self.told, 0)


class Progress:
    """Finished trials against the budget, the best value so far, the running groups' epochs and the ETA.

    On a terminal a live bar; in a log, the ``[n/total]`` on each trial's line says the
    same, and a plain line per epoch (at most one per worker every few seconds) shows
    that long runs are moving. The ETA is this run's pace: the trials it finished and the
    done share of running groups (less what a checkpoint restored), over the time since
    its first group started training (not the start-up before). It exists after the
    first epoch, before any trial finishes; each new estimate moves the shown one
    ``ETA_SMOOTHING`` of the way from its countdown, so that it does not jump.
    """

    def __init__(
        self, kind: str, budget: int, finished: int = 0, best: float | None = None, stream: TextIO = sys.stderr
    ) -> None:
        self.best, self.budget, self.stream = best, budget, stream
        self.finished = self.initial = min(finished, budget)
        self.started: float | None = None  # when this run's first group started training
        self._shown: tuple[float, float] | None = None  # the last ETA shown, and when
        self.running: dict[int, _Running] = {}
        self.epoch_text = ""
        self._printed: dict[int, float] = {}
        self.bar = tqdm(
            total=budget,
            initial=self.finished,
            desc=kind,
            unit="trial",
            file=stream,
            dynamic_ncols=True,
            disable=not stream.isatty(),
            bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed} elapsed{postfix}",
        )
        self._postfix()

    def __call__(self, event: Event) -> None:
        if event["type"] == "epoch":
            self._epoch(event)
        elif event["type"] == "trial":
            self._trial(event)
        elif event["type"] == "note":
            self._write(f"note: worker {event['worker']}: {event['text']}")

    def _trial(self, event: Event) -> None:
        running = self.running.get(event.get("worker", 0))
        if running is not None:
            running.told += 1
        if records.is_finished(event["state"]):
            self.finished += 1
            self.bar.update(1)
        if event["state"] == "COMPLETE" and event["value"] is not None:
            self.best = event["value"] if self.best is None else max(self.best, event["value"])
        self._write(f"[{self.finished}/{self.budget}] {format_trial(event)}")
        self._postfix()

    def _epoch(self, event: Event) -> None:
        worker = event["worker"]
        if self.started is None:
            self.started = time.monotonic()
        running = self.running.get(worker)
        if running is None or running.first_trial != event["first_trial"]:
            running = self.running[worker] = _Running(event["first_trial"], event["trials"], event["fraction"])
            if event.get("resumed"):
                running.restored = event["fraction"]
                self._write(f"worker {worker}: resuming {format_group(event)} from its checkpoint at epoch "
                            f"{event['resumed']}")  # fmt: skip
        else:
            running.fraction = event["fraction"]
        if event["epoch"] == 0 or event["epoch"] == event.get("resumed"):
            return  # the run starts: nothing trained yet
        self.epoch_text = format_epoch(event)
        if self.bar.disable:
            now = time.monotonic()
            if now - self._printed.get(worker, -PLAIN_EPOCH_SECONDS) >= PLAIN_EPOCH_SECONDS:
                self._printed[worker] = now
                eta = self.eta()
                left = f", study ~{format_seconds(eta)} left" if eta is not None else ""
                self._write(f"worker {worker}: {self.epoch_text}{left}")
        self._postfix()

    def eta(self) -> float | None:
        """Seconds until the budget is reached at this run's pace so far (smoothed), or None before any progress."""
        done = self.finished - self.initial + sum(r.work_here for r in self.running.values())
        if done <= 0 or self.started is None:
            return None
        now = time.monotonic()
        left = max(self.budget - self.finished - sum(r.open_work for r in self.running.values()), 0.0)
        estimate = left * (now - self.started) / done
        if self._shown is not None:
            countdown = max(self._shown[0] - (now - self._shown[1]), 0.0)
            estimate = countdown + ETA_SMOOTHING * (estimate - countdown)
        self._shown = (estimate, now)
        return estimate

    def _write(self, line: str) -> None:
        if self.bar.disable:
            print(line, file=self.stream, flush=True)
        else:
            self.bar.write(line, file=self.stream)

    def _postfix(self) -> None:
        parts = ["best " + (f"{self.best:.4f}" if self.best is not None else "-")]
        if self.epoch_text:
            parts.append(self.epoch_text)
        eta = self.eta()
        if eta is not None:
            parts.append(f"~{format_seconds(eta)} left")
        self.bar.set_postfix_str(", ".join(parts))

    def close(self) -> None:
        self.bar.close()


def format_epoch(event: Event) -> str:
    """``epoch 7/25 (run 2/3) of trials 12-20, 41,000 images/s``."""
    run = f" (run {event['run']}/{event['runs']})" if event["runs"] > 1 else ""
    return (
        f"epoch {event['epoch']}/{event['epochs']}{run} of {_trials(event)}, "
        f"{event['images_per_second']:,.0f} images/s"
    )


def format_group(event: Event) -> str:
    """``group of trials 12-20`` (``run 2/3 of ...`` when it trains in several runs)."""
    run = f"run {event['run']}/{event['runs']} of " if event["runs"] > 1 else ""
    return f"{run}group of {_trials(event)}"


def _trials(event: Event) -> str:
    last = event["first_trial"] + event["trials"] - 1
    return f"trial {last}" if event["trials"] == 1 else f"trials {event['first_trial']}-{last}"


def format_seconds(seconds: float) -> str:
    """``45s``, ``3m20s``, ``2h05m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_trial(event: Event) -> str:
    state = event["state"].lower()
    figures = ""
    if event.get("value") is not None:
        figures = f" val {event['value']:.4f}"
        if event.get("spread") is not None:
            figures += f" ±{event['spread']:.4f}"
    if event.get("test_accuracy") is not None:
        figures += f" test {event['test_accuracy']:.4f}"
    if event.get("seconds") is not None:
        figures += f" in {event['seconds']:.1f}s"
    if event.get("ask_seconds") is not None:  # the sampler's decision (GP's is tens of milliseconds)
        figures += f", asked in {1000 * event['ask_seconds']:.0f} ms"
    reason = f" ({event['reason']})" if event.get("reason") else ""
    return f"trial {event['number']:>4} {state:<8}{figures}{reason}  {format_params(event['params'])}"


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def trial_event(frozen: optuna.trial.FrozenTrial, worker: int = 0) -> Event:
    """What the terminal shows of a closed trial (sent from a worker process to ``Progress``)."""
    values = [v for v in records.seed_values(frozen) if not math.isnan(v)]
    return {
        "type": "trial",
        "worker": worker,
        "number": frozen.number,
        "state": frozen.state.name,
        "value": records.accuracy(frozen),
        "test_accuracy": records.test_accuracy(frozen),
        # The seeds' sample standard deviation: how much of a difference between points is noise.
        "spread": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "seconds": frozen.user_attrs.get("train_seconds"),
        "ask_seconds": frozen.user_attrs.get(records.ASK_SECONDS),
        "epochs": records.epochs_run(frozen),
        "params": frozen.params,
        "reason": frozen.user_attrs.get(records.FAIL_REASON),
    }


def epoch_event(progress: GroupProgress, worker: int = 0) -> Event:
    """Where a worker's running group stands (sent to ``Progress`` after each epoch)."""
    return {"type": "epoch", "worker": worker, "fraction": progress.fraction, **dataclasses.asdict(progress)}
