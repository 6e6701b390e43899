"""One self-contained HTML page for a study: summary, learning curves and Optuna's plots."""

from __future__ import annotations

import html
import warnings
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna import visualization as vis

from search.analysis.figures import study_figures
from search.analysis.summary import StudySummary, summarize
from search.analysis.text import best_line, format_counts, format_value

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 24px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 16px; } td, th { border: 1px solid #ddd; padding: 4px 10px; }
th { background: #f5f5f5; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figure { margin: 12px 0 28px; } .muted { color: #666; }
"""


def optuna_figures(study: optuna.Study) -> dict[str, go.Figure]:
    """Optuna's own plots that need no extra packages, skipping those the study cannot support yet."""
    figures = {}
    makers = {
        "Optimization history": vis.plot_optimization_history,
        "Parameter importances": vis.plot_param_importances,
        "Parallel coordinates": vis.plot_parallel_coordinate,
    }
    for title, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = make(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
        if fig.data:
            fig.update_layout(title={"text": title, "x": 0.01}, template="plotly_white", height=460)
            figures[title] = fig
    return figures


def render_report(study: optuna.Study, params: list[str]) -> str:
    """The report's HTML; plotly.js is inlined once so that the page works offline."""
    summary = summarize(study)
    sections: list[tuple[str, list[go.Figure]]] = []
    ours = study_figures(study, params)
    curves = [fig for key, fig in ours.items() if key.startswith("curves-")]
    if curves:
        sections.append(("Learning curves by parameter value", curves))
    theirs = optuna_figures(study)
    for title, fig in theirs.items():
        sections.append((title, [fig]))
    if "time-vs-batch-size" in ours:
        sections.append(("Training time against batch size", [ours["time-vs-batch-size"]]))
    body = [_summary_html(summary)]
    first = True
    for title, figures in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        for fig in figures:
            div = fig.to_html(
                full_html=False,
                include_plotlyjs="inline" if first else False,
                config={"responsive": True, "displaylogo": False},
            )
            body.append(f'<div class="figure">{div}</div>')
            first = False
    if first:
        body.append('<p class="muted">No finished trial yet: nothing to plot.</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(study.study_name)} — MNIST search report</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_report(study: optuna.Study, params: list[str], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(study, params), encoding="utf-8")
    return out


def _summary_html(s: StudySummary) -> str:
    counts = format_counts(s.states)
    parts = [
        f"<h1>{html.escape(s.name)}</h1>",
        f'<p class="muted">{html.escape(s.kind)} study · {counts} · {s.train_seconds:.0f} s of training, '
        f"{s.wall_seconds:.0f} s wall time</p>",
    ]
    if s.best is not None:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(format_value(v))}</td></tr>"
            for k, v in s.best.params.items()
        )
        parts.append(
            f"<p><b>Best: {html.escape(best_line(s.best))}.</b></p><table>{rows}</table>"
        )
    if s.effects:
        rows = "".join(
            f"<tr><td>{html.escape(e.param)}</td><td>{html.escape(str(e.value))}</td>"
            f'<td class="num">{e.val_accuracy:.4f}</td><td class="num">{e.delta:+.4f}</td></tr>'
            for e in s.effects
        )
        parts.append(
            "<h2>Each parameter's effect, moved alone from the baseline</h2><table><tr><th>parameter</th>"
            f"<th>value</th><th>validation accuracy</th><th>change</th></tr>{rows}</table>"
        )
    return "".join(parts)
