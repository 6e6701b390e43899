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
from search.run import cost

if TYPE_CHECKING:
    from trainer.objective import GroupProgress

# What a worker reports: {"type": "trial", "number": ..., "state": ...} when a trial closes,
# {"type": "epoch", "worker": ..., "epoch": ..., ...} (a GroupProgress) as a run starts, after each
# epoch and every few seconds within one, {"type": "note", "worker": ..., "text": ...} for what a
# worker has to say once (a fallback it took), {"type": "status", "text": ...} (with "worker" when
# one worker's) for what a start is busy with.
Event = dict[str, Any]
Emit = Callable[[Event], None]
PLAIN_SECONDS = 10.0  # off a terminal, at most one line within an epoch per worker this often
ETA_SMOOTHING = 0.3  # each new estimate moves the shown ETA this share of the way from its countdown


@dataclass
class _Running:
    """A worker's running group as last reported."""

    first_trial: int
    trials: int
    fraction: float
    told: int = 0  # its trials already closed (they count as finished, not as running)
    restored: float = 0.0  # the share of the group a checkpoint restored: done, but not by this run
    event: Event | None = None  # the last report of its current run
    units_before: float = 0.0  # the cost of its runs before the current one (``search.run.cost``)
    units_restored: float = 0.0  # the cost of what checkpoints restored

    @property
    def open_work(self) -> float:
        """The group's done share, in trials, for those of its trials still open."""
        return self.fraction * max(self.trials - self.told, 0)

    @property
    def work_here(self) -> float:
        """``open_work`` less what the checkpoint restored: what this run trained."""
        return max(self.fraction - self.restored, 0.0) * max(self.trials - self.told, 0)

    @property
    def units_done(self) -> float:
        """The cost of what the group has trained, by this run or before it."""
        event = self.event
        if event is None or not event.get("network_epochs"):
            return self.units_before
        return self.units_before + cost.run_units(event, event["epoch"] + event.get("share", 0.0))

    @property
    def units(self) -> float:
        """The cost of the group's runs so far, whole."""
        event = self.event
        return self.units_before + (cost.run_units(event) if event and event.get("network_epochs") else 0.0)


class Progress:
    """Finished trials against the budget, the best value so far, the running groups' epochs and the ETA.

    On a terminal a live bar; in a log, the ``[n/total]`` on each trial's line says the
    same, and a plain line per worker at each epoch's end, and within an epoch at most every
    ``PLAIN_SECONDS``, shows that long runs are moving. The ETA is this run's pace over the time
    since its first group started training (not the start-up before), less what a
    checkpoint restored. With ``work``, the cost of what the study has left
    (``search.run.cost``: networks x steps x each shape's step cost), the pace is of cost
    trained, so that a cheap group's pace does not promise the dear ones'; without it, of
    trials finished. It exists after the first word from a training group, before any trial
    finishes; each new estimate moves the shown one ``ETA_SMOOTHING`` of the way from its
    countdown, so that it does not jump.
    """

    def __init__(
        self,
        kind: str,
        budget: int,
        finished: int = 0,
        best: float | None = None,
        stream: TextIO = sys.stderr,
        work: float | None = None,
    ) -> None:
        self.best, self.budget, self.stream, self.work = best, budget, stream, work
        self.finished = self.initial = min(finished, budget)
        self.started: float | None = None  # when this run's first group started training
        self._shown: tuple[float, float] | None = None  # the last ETA shown, and when
        self.running: dict[int, _Running] = {}
        self.units_ended = 0.0  # the cost of the groups that ended in this run, whole
        self.units_ended_here: dict[int, float] = {}  # each worker's, less what their checkpoints restored
        self._worker_started: dict[int, float] = {}  # when each worker's first group started
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
        elif event["type"] == "status":
            self._write(f"worker {event['worker']}: {event['text']}" if "worker" in event else event["text"])

    def stopping(self) -> None:
        """Say at once that an interrupt was heard and what closing involves (it may take many seconds)."""
        running = sum(max(r.trials - r.told, 0) for r in self.running.values())
        if running:
            trials = f"{running} running trial{'s' if running != 1 else ''}"
            self._write(f"stopping: closing {trials}, saving checkpoints ... (their points run again on resuming)")
        else:
            self._write("stopping ...")

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
        self._worker_started.setdefault(worker, time.monotonic())
        self._track(worker, event)
        share = event.get("share", 0.0)
        if share == 0 and event["epoch"] in (0, event.get("resumed")):
            return  # the run starts: nothing trained yet
        self.epoch_text = format_epoch(event)
        if self.bar.disable:
            now = time.monotonic()
            # An epoch's end is always said (a Ctrl-C there keeps the epoch); lines within one, at most this often.
            if not share or now - self._printed.get(worker, -PLAIN_SECONDS) >= PLAIN_SECONDS:
                self._printed[worker] = now
                eta = self.eta()
                left = f", study ~{format_seconds(eta)} left" if eta is not None else ""
                self._write(f"worker {worker}: {self.epoch_text}{left}")
        self._postfix()

    def _track(self, worker: int, event: Event) -> None:
        """The worker's running group, updated by ``event``; a new one said as it starts."""
        running = self.running.get(worker)
        if running is None or running.first_trial != event["first_trial"]:
            if running is not None:  # the worker's last group ended
                self.units_ended += running.units
                ended = running.units - running.units_restored
                self.units_ended_here[worker] = self.units_ended_here.get(worker, 0.0) + ended
            running = self.running[worker] = _Running(event["first_trial"], event["trials"], event["fraction"])
        elif running.event is not None and running.event["run"] != event["run"]:
            running.units_before = running.units
        running.fraction, running.event = event["fraction"], event
        if event["epoch"] == event.get("resumed") and event.get("share", 0.0) == 0:  # a run starts
            if event.get("resumed"):
                running.restored = event["fraction"]
                running.units_restored += running.units_done - running.units_before
                self._write(f"worker {worker}: resuming {format_group(event)} from its checkpoint at epoch "
                            f"{event['resumed']}")  # fmt: skip
            elif event.get("network_epochs"):
                self._write(f"worker {worker}: training {format_run(event)}")

    def eta(self) -> float | None:
        """Seconds until the budget is reached at this run's pace so far (smoothed), or None before any progress."""
        if self.started is None:
            return None
        now = time.monotonic()
        if self.work is None:
            done = self.finished - self.initial + sum(r.work_here for r in self.running.values())
            left = max(self.budget - self.finished - sum(r.open_work for r in self.running.values()), 0.0)
            pace = done / max(now - self.started, 1e-9)
        else:
            left = max(self.work - self.units_ended - sum(r.units_done for r in self.running.values()), 0.0)
            pace = sum(self._pace(worker, now) for worker in self._worker_started)
        if pace <= 0:
            return None
        estimate = left / pace
        if self._shown is not None:
            countdown = max(self._shown[0] - (now - self._shown[1]), 0.0)
            estimate = countdown + ETA_SMOOTHING * (estimate - countdown)
        self._shown = (estimate, now)
        return estimate

    def _pace(self, worker: int, now: float) -> float:
        """The cost a worker trained per second since its first group started (workers start apart)."""
        done = self.units_ended_here.get(worker, 0.0)
        if (running := self.running.get(worker)) is not None:
            done += running.units_done - running.units_restored
        return done / max(now - self._worker_started[worker], 1e-9)

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
    """``epoch 7/25 (run 2/3) of trials 12-20, 18 networks, 738,000 network-images/s``; within an epoch
    ``epoch 8/25 ... of trials 12-20, batch 420/782, ...``."""
    run = f" (run {event['run']}/{event['runs']})" if event["runs"] > 1 else ""
    share = event.get("share", 0.0)
    within = ""
    if share:
        batches = -(-event["images"] // event["batch_size"])
        within = f", batch {round(share * batches):,}/{batches:,}"
    epoch = event["epoch"] + 1 if share else event["epoch"]
    own = event.get("network_epochs")
    if own:
        networks = sum(e >= epoch for e in own)
        rate = f"{networks} network{'s' if networks != 1 else ''}, "
        rate += f"{networks * event['images_per_second']:,.0f} network-images/s"
    else:
        rate = f"{event['images_per_second']:,.0f} images/s"
    return f"epoch {epoch}/{event['epochs']}{run} of {_trials(event)}{within}, {rate}"


def format_run(event: Event) -> str:
    """``trials 0-80: 18 networks of 3 x 128, batch 16, 3 epochs`` (``run 2/3 of ...`` when in several runs)."""
    own = event["network_epochs"]
    epochs = f"{max(own)} epochs" if len(set(own)) == 1 else f"{min(own)}-{max(own)} epochs"
    networks = f"{len(own)} network{'s' if len(own) != 1 else ''}"
    run = f"run {event['run']}/{event['runs']} of " if event["runs"] > 1 else ""
    return f"{run}{_trials(event)}: {networks} of {event['shape']}, batch {event['batch_size']}, {epochs}"


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
