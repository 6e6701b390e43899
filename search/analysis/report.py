"""One self-contained HTML page for a study: summary, learning curves and Optuna's plots."""

from __future__ import annotations

import hashlib
import html
import re
import warnings

import optuna
import plotly.graph_objects as go
from optuna import visualization as vis

from search import records
from search.analysis.effects import Effects, study_effects
from search.analysis.effects_text import Table, headline, tables
from search.analysis.figures import study_figures
from search.analysis.summary import StudySummary, summarize
from search.analysis.text import best_line, format_value

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 24px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 16px; } td, th { border: 1px solid #ddd; padding: 4px 10px; }
th { background: #f5f5f5; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figure { margin: 12px 0 28px; } .muted { color: #666; }
"""

REPORTS = "reports"  # the folder a report goes to when no --out is given
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def report_path(study_name: str) -> str:
    """Where ``report`` writes without ``--out``: one file directly inside ``reports/``, for any name.

    A plain name (letters, digits, ``.``, ``_``, ``-``) is kept: ``reports/mnist-grid.html``.
    Any other (slashes, ``..``, spaces, a leading dot, over 100 characters) keeps its plain
    characters and gets a hash of the whole name, so that two names never share a file and a
    name in a shared database cannot pick a path outside ``reports/``.
    """
    if _PLAIN_NAME.fullmatch(study_name):
        return f"{REPORTS}/{study_name}.html"
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip("._-")[:80] or "study"
    return f"{REPORTS}/{plain}-{hashlib.sha256(study_name.encode()).hexdigest()[:12]}.html"


def optuna_figures(study: optuna.Study) -> dict[str, go.Figure]:
    """Optuna's own plots that need no extra packages, skipping those the study cannot support yet.

    Its importance plot is left out: the effects section shows PED-ANOVA and fANOVA side
    by side (and leaves them out on one-at-a-time studies, where they mislead).
    """
    figures = {}
    makers = {
        "Optimization history": vis.plot_optimization_history,
        "Parallel coordinates": lambda s: vis.plot_parallel_coordinate(s, params=_varied_params(s)),
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
            if title == "Parallel coordinates":
                _tidy_parallel(fig)
            figures[title] = fig
    return figures


def front_figures(study: optuna.Study) -> dict[str, go.Figure]:
    """A multi-objective study's Pareto front and hypervolume history (none for one objective).

    The hypervolume's reference point is the worst corner: accuracy 0, and 1.1 times the
    largest cost seen in each cost objective.
    """
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(study.directions) < 2 or not complete:
        return {}
    names = study.metric_names or None
    reference = [
        0.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.1 * max(t.values[i] for t in complete)
        for i, d in enumerate(study.directions)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figures = {
            "Pareto front": vis.plot_pareto_front(study, target_names=names),
            "Hypervolume history": vis.plot_hypervolume_history(study, reference),
        }
    for title, fig in figures.items():
        fig.update_layout(title={"text": title, "x": 0.01}, template="plotly_white", height=460)
    if len(study.directions) == 2:  # costs span decades (parameters: 10^4..10^6), the front sits low on a linear axis
        figures["Pareto front"].update_yaxes(type="log", dtick=1)  # a label per decade only
    figures["Hypervolume history"].update_layout(
        yaxis_title=f"hypervolume (reference point {', '.join(f'{r:.4g}' for r in reference)})"
    )
    return figures


def _tidy_parallel(fig: go.Figure) -> None:
    """The axes' top labels clear of the title, and no blank band above it."""
    title = {"y": 0.97, "yref": "container", "yanchor": "top"}
    fig.update_layout(height=420, margin={"t": 90, "b": 40, "l": 70, "r": 40}, title=title)


def _varied_params(study: optuna.Study) -> list[str]:
    """The parameters that take more than one value in the study's trials (an axis for one value says nothing)."""
    values: dict[str, set] = {}
    for t in study.get_trials(deepcopy=False):
        for k, v in t.params.items():
            values.setdefault(k, set()).add(v)
    return [k for k, seen in values.items() if len(seen) > 1]


class _Page:
    """The report's body, inlining plotly.js with the first figure only."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures = 0

    def add(self, fig: go.Figure, graph_id: str) -> None:
        """Add one figure, its container marked ``data-graph=graph_id`` (the browser test finds it by that)."""
        div = fig.to_html(
            full_html=False,
            include_plotlyjs="inline" if self.figures == 0 else False,
            div_id=graph_id,
            config={"responsive": True, "displaylogo": False},
        )
        self.parts.append(f'<div class="figure" data-graph="{html.escape(graph_id)}">{div}</div>')
        self.figures += 1

    def add_all(self, figures: dict[str, go.Figure], prefix: str, but: str | None = None) -> list[str]:
        """Add the figures whose id starts with ``prefix`` (and not with ``but``); returns their ids."""
        keys = [k for k in figures if k.startswith(prefix) and not (but and k.startswith(but))]
        for key in keys:
            self.add(figures[key], key.lower().replace(" ", "-"))
        return keys

    def section(self, title: str, figures: dict[str, go.Figure], prefix: str, but: str | None = None) -> None:
        """A titled section of the matching figures, left out when none match."""
        mark = len(self.parts)
        if self.add_all(figures, prefix, but):
            self.parts.insert(mark, f"<h2>{html.escape(title)}</h2>")


def render_report(study: optuna.Study, params: list[str]) -> str:
    """The report's HTML; plotly.js is inlined once so that the page works offline.

    A multi-objective study's front comes first; everything else reads its accuracy.
    """
    front = front_figures(study)
    study = records.accuracy_study(study)
    effects = study_effects(study)
    ours = study_figures(study, params, effects, test_view=True)
    page = _Page()
    page.parts.append(_summary_html(summarize(study)))
    for title, fig in front.items():
        page.section(title, {title: fig}, title)
    if effects is not None:
        command = f"python -m search effects --study-name {study.study_name}"
        page.parts.append(
            f'<h2 id="effects">Which choices matter</h2><p class="muted">{html.escape(headline(effects))}; '
            f"the same tables: <code>{html.escape(command)}</code></p>"
        )
        page.add_all(ours, "effects-")
        page.parts.append(_effects_html(effects))
    page.section("How the varied parameters interact", ours, "interaction")
    page.section("Learning curves by parameter value", ours, "curves-", but="curves-test-")
    if any(k.startswith("curves-test-") for k in ours):
        page.parts.append("<details><summary>Test-set curves (a lighter view; the objective is validation)</summary>")
        page.add_all(ours, "curves-test-")
        page.parts.append("</details>")
    for title, fig in optuna_figures(study).items():
        page.section(title, {title: fig}, title)
    page.section("Training time against batch size", ours, "time-vs-batch-size")
    if page.figures == 0:
        page.parts.append('<p class="muted">No finished trial yet: nothing to plot.</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(study.study_name)} — MNIST search report</title><style>{STYLE}</style></head>"
        f"<body>{''.join(page.parts)}</body></html>\n"
    )


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"num" if i >= t.names else ""}">{html.escape(c)}</td>' for i, c in enumerate(row)
        ) + "</tr>"
        for row in t.rows
    )  # fmt: skip
    caption = f"<p>{html.escape(t.caption)}</p>" if t.caption else ""
    return f"<h3>{html.escape(t.title)}</h3>{caption}<table><tr>{head}</tr>{body}</table>"


def _effects_html(e: Effects) -> str:
    parts = [_table_html(t) if t.rows else f"<h3>{html.escape(t.title)}</h3><p>none</p>" for t in tables(e)]
    parts += [f'<p class="muted">Note: {html.escape(n)}.</p>' for n in e.notes]
    return "".join(parts)


def _summary_html(s: StudySummary) -> str:
    parts = [
        f"<h1>{html.escape(s.name)}</h1>",
        f'<p class="muted">{html.escape(s.kind)} study · {s.outcomes.describe(by_state=True)} · '
        f"{s.train_seconds:.0f} s of "
        f"training, {s.wall_seconds:.0f} s wall time</p>",
    ]
    if s.best is not None:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(format_value(v))}</td></tr>"
            for k, v in s.best.params.items()
        )
        parts.append(f"<p><b>Best: {html.escape(best_line(s.best))}.</b></p><table>{rows}</table>")
    return "".join(parts)
