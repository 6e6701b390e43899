"""The terminal view of a running study: one bar, and a line per finished trial."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

Event = dict[str, Any]  # what a worker reports: {"type": "trial", "number": ..., "state": ...}


class Progress:
    """Finished trials against the budget, the best value so far, elapsed and remaining time.

    On a terminal a live bar; in a log, the ``[n/total]`` on each trial's line says the same.
    """

    def __init__(
        self, kind: str, budget: int, finished: int = 0, best: float | None = None, stream: TextIO = sys.stderr
    ) -> None:
        self.best, self.budget, self.stream = best, budget, stream
        self.finished = min(finished, budget)
        self.bar = tqdm(
            total=budget,
            initial=self.finished,
            desc=kind,
            unit="trial",
            file=stream,
            dynamic_ncols=True,
            disable=not stream.isatty(),
            bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed} elapsed, ~{remaining} left{postfix}",
        )
        self._postfix()

    def __call__(self, event: Event) -> None:
        if event["type"] != "trial":
            return
        if event["state"] in ("COMPLETE", "PRUNED"):
            self.finished += 1
            self.bar.update(1)
        if event["state"] == "COMPLETE" and event["value"] is not None:
            self.best = event["value"] if self.best is None else max(self.best, event["value"])
        line = f"[{self.finished}/{self.budget}] {format_trial(event)}"
        if self.bar.disable:
            print(line, file=self.stream, flush=True)
        else:
            self.bar.write(line, file=self.stream)
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str("best " + (f"{self.best:.4f}" if self.best is not None else "-"))

    def close(self) -> None:
        self.bar.close()


def format_trial(event: Event) -> str:
    state = event["state"].lower()
    figures = ""
    if event.get("value") is not None:
        figures = f" val {event['value']:.4f}"
    if event.get("test_accuracy") is not None:
        figures += f" test {event['test_accuracy']:.4f}"
    if event.get("seconds") is not None:
        figures += f" in {event['seconds']:.1f}s"
    reason = f" ({event['reason']})" if event.get("reason") else ""
    return f"trial {event['number']:>4} {state:<8}{figures}{reason}  {format_params(event['params'])}"


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
