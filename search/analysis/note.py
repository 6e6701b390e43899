"""The markdown notes optuna-dashboard shows: the study's (with its effects) and a trial's history."""

from __future__ import annotations

import optuna

from search.analysis.effects import Effects, study_effects
from search.analysis.effects_text import Table, headline, markdown, tables
from search.analysis.summary import StudySummary, summarize
from search.analysis.text import best_line, format_value
from search.records import History

HISTORY_COLUMNS = (
    ("epoch", "epoch", "{:.0f}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("train_accuracy", "train acc", "{:.4f}"),
    ("val_loss", "val loss", "{:.4f}"),
    ("val_accuracy", "val acc", "{:.4f}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("test_accuracy", "test acc", "{:.4f}"),
    ("seconds", "seconds", "{:.2f}"),
)


def study_note(study: optuna.Study, effects: Effects | None = None) -> str:
    """The study's note: trial counts, the best trial, which choices matter (with intervals), and time.

    ``effects`` are gathered when not given (none before a trial completes).
    """
    return note_markdown(summarize(study), effects or study_effects(study))


def note_markdown(s: StudySummary, effects: Effects | None) -> str:
    """The note's markdown from a summary and the study's effects (None before any trial completes)."""
    lines = [f"## {s.name} ({s.kind})", "", f"Trials: {s.outcomes.describe(by_state=True)}.", ""]
    if s.outcomes.requeued:
        lines += [
            f"_The {s.outcomes.requeued} interrupted and re-queued trials (shown as FAIL) are not failures: "
            "each was stopped by Ctrl-C, SIGTERM or a dead worker, and its point was queued again as a new "
            "trial, resuming its group's checkpoint._",
            "",
        ]
    if s.best is not None:
        lines += [f"**Best: {best_line(s.best)}.**", ""]
        lines += markdown(
            Table("", ["parameter", "best value"], [[k, format_value(v)] for k, v in s.best.params.items()])
        )
        lines.append("")
    if effects is not None:
        lines += [f"### Which choices matter ({headline(effects)})", ""]
        # On oat studies the changes say it all; their main effects are in `python -m search effects`.
        for t in tables(effects):
            if t.rows and not (effects.oat and t.section == "main"):
                caption = [f"_{line.strip()}_  " for line in t.caption.splitlines()]
                lines += [f"**{t.title}**", "", *markdown(t), "", *([*caption, ""] if caption else [])]
        lines += [f"_Note: {n}._" for n in effects.notes if not (effects.oat and n.startswith("main effects"))]
        lines.append("")
    lines.append(f"Time: {s.train_seconds:.0f} s of training, {s.wall_seconds:.0f} s from first start to last end.")
    return "\n".join(lines)


def history_markdown(histories: list[History], seeds: list[int] | None = None) -> str:
    """Each seed's per-epoch history as a markdown table (a heading per seed when there are several)."""
    lines: list[str] = []
    for i, history in enumerate(histories):
        if len(histories) > 1:
            lines += [f"**seed {seeds[i] if seeds else i + 1}**", ""]
        keys = [c for c in HISTORY_COLUMNS if history and c[0] in history[0]]
        rows = [[fmt.format(r[key]) for key, _, fmt in keys] for r in history]
        lines += [*markdown(Table("", [title for _, title, _ in keys], rows), names=0), ""]
    return "\n".join(lines).rstrip()
