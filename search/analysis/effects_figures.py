"""Which choices matter, drawn: per-value strips with intervals, oat changes, interaction heatmaps, importances.

Each figure has a gathering function (tests compare its data) and a drawing function.
"""

from __future__ import annotations

from typing import NamedTuple

import optuna
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from search.analysis.anova import Interaction
from search.analysis.effects import Effects, MainEffect, OatChange
from search.analysis.effects_text import IMPORTANCE_NAMES
from search.analysis.table import trial_levels
from search.analysis.verdicts import IDENTICAL, MARGIN, MATTERS, NEGLIGIBLE, NONZERO, UNDETERMINED

POINT_COLOR = "rgba(31, 119, 180, 0.55)"
MEAN_COLOR = "#d62728"
VERDICT_COLORS = {
    MATTERS: "#d62728", NONZERO: "#ff7f0e", NEGLIGIBLE: "#2ca02c", UNDETERMINED: "#7f7f7f", IDENTICAL: "#1f77b4"
}
TEMPLATE = "plotly_white"


class LevelStrip(NamedTuple):
    """One parameter level: every complete trial's validation accuracy, and its main effect row."""

    parameter: str
    value: str
    values: list[float]
    effect: MainEffect


def strips_info(study: optuna.Study, effects: Effects) -> dict[str, list[LevelStrip]]:
    """Per parameter, its levels' trial values beside their main effect (the same levels as ``effects``)."""
    by_level = trial_levels(study)
    out: dict[str, list[LevelStrip]] = {}
    for row in effects.main_effects:
        values = by_level.get((row.parameter, row.value), [])
        out.setdefault(row.parameter, []).append(LevelStrip(row.parameter, row.value, values, row))
    return out


def strips_figure(strips: dict[str, list[LevelStrip]]) -> go.Figure:
    """A box and strip of validation accuracy per value, with the mean and its interval, a panel per parameter."""
    params = list(strips)
    cols = min(4, len(params)) or 1
    rows = (len(params) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=params, shared_yaxes=True, horizontal_spacing=0.03,
                        vertical_spacing=0.14)  # fmt: skip
    for i, param in enumerate(params):
        row, col = i // cols + 1, i % cols + 1
        for strip in strips[param]:
            fig.add_trace(
                go.Box(y=strip.values, name=strip.value, boxpoints="all", jitter=0.5, pointpos=0,
                       marker={"color": POINT_COLOR, "size": 4}, line={"color": "#888", "width": 1},
                       fillcolor="rgba(0,0,0,0)", showlegend=False,
                       hovertemplate=f"{param}={strip.value}<br>%{{y:.4f}}<extra></extra>"),
                row=row, col=col,
            )  # fmt: skip
        effects = [s.effect for s in strips[param]]
        fig.add_trace(
            go.Scatter(
                x=[e.value for e in effects], y=[e.mean for e in effects], mode="markers",
                marker={"color": MEAN_COLOR, "size": 9, "symbol": "diamond"},
                name="mean", legendgroup="mean", showlegend=i == 0,
                customdata=[[e.n] for e in effects],
                hovertemplate=f"{param}=%{{x}}<br>mean %{{y:.4f}} over %{{customdata[0]}} trials<extra></extra>",
            ),
            row=row, col=col,
        )  # fmt: skip
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="validation accuracy", col=1)
    fig.update_layout(
        title={"text": "Validation accuracy per value<br><sup>every complete trial, its box and its mean: a "
                       "description; the contrasts and their intervals are in the effects table</sup>", "x": 0.01},
        height=330 * rows + 80, template=TEMPLATE, margin={"l": 60, "r": 10, "t": 100, "b": 40},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    )  # fmt: skip
    return fig


def _errors(centres: list[float], lows: list[float | None], highs: list[float | None]) -> dict:
    """Plotly's asymmetric error bars; none where there is no interval."""
    return {
        "type": "data", "symmetric": False, "thickness": 2, "width": 6, "color": MEAN_COLOR,
        "array": [h - c if h is not None else 0 for c, h in zip(centres, highs, strict=True)],
        "arrayminus": [c - lo if lo is not None else 0 for c, lo in zip(centres, lows, strict=True)],
    }  # fmt: skip


def oat_order(changes: list[OatChange]) -> list[OatChange]:
    """The oat changes from the largest drop or gain to the smallest (by absolute size)."""
    return sorted(changes, key=lambda c: abs(c.change))


def oat_figure(changes: list[OatChange], margin: float = MARGIN) -> go.Figure:
    """Each moved value's change from the baseline with its adjusted interval, the largest at the top, by verdict."""
    ordered = oat_order(changes)
    labels = [f"{c.parameter} = {c.value}" for c in ordered]
    fig = go.Figure()
    for verdict, color in VERDICT_COLORS.items():
        mine = [(label, c) for label, c in zip(labels, ordered, strict=True) if c.verdict == verdict]
        if not mine:
            continue
        cs = [c for _, c in mine]
        errors = _errors([c.change for c in cs], [c.adjusted_low for c in cs], [c.adjusted_high for c in cs])
        fig.add_trace(
            go.Scatter(
                x=[c.change for c in cs], y=[label for label, _ in mine], mode="markers",
                marker={"color": color, "size": 10}, error_x={**errors, "color": color},
                name=verdict, hovertemplate="%{y}<br>change %{x:+.4f}<extra></extra>",
            )
        )  # fmt: skip
    fig.add_vline(x=0, line={"color": "#444", "width": 1})
    if margin:
        fig.add_vrect(x0=-margin, x1=margin, fillcolor="#2ca02c", opacity=0.08, line_width=0)
    tested = any(c.adjusted_low is not None for c in changes)
    sub = (f"simultaneous (Bonferroni) intervals over the seeds and validation images; shaded: the +-{margin:.4f} "
           "margin" if tested
           else f"fewer than 3 seeds per point: no verdict (run with --seeds K); shaded: +-{margin:.4f}")  # fmt: skip
    fig.update_layout(
        title={"text": f"Change from the baseline, one parameter moved at a time<br><sup>{sub}</sup>", "x": 0.01},
        xaxis_title="change in validation accuracy", template=TEMPLATE, height=120 + 28 * len(ordered),
        yaxis={"categoryorder": "array", "categoryarray": labels}, margin={"l": 200, "r": 20, "t": 90, "b": 50},
    )  # fmt: skip
    return fig


def interaction_figure(i: Interaction) -> go.Figure:
    """The median validation accuracy of each cell of a parameter pair, as a heatmap with its numbers."""
    a, b = i.parameters
    text = [["" if m is None else f"{m:.4f}" for m in row] for row in i.medians]
    fig = go.Figure(
        go.Heatmap(
            z=i.medians, x=i.columns, y=i.rows, text=text, texttemplate="%{text}", colorscale="Viridis",
            colorbar={"title": {"text": "median"}},
            hovertemplate=f"{a}=%{{y}}, {b}=%{{x}}<br>median %{{z:.4f}}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title={"text": f"{a} x {b}: median validation accuracy<br><sup>{i.share:.1%} of the variance beyond "
                       f"every main effect (family-wise p = {i.p:.3f})</sup>", "x": 0.01},
        xaxis={"title": b, "type": "category"}, yaxis={"title": a, "type": "category"},
        template=TEMPLATE, height=380, width=560, margin={"l": 90, "r": 20, "t": 80, "b": 60},
    )  # fmt: skip
    return fig


def importance_info(effects: Effects) -> dict[str, dict[str, float]]:
    """Each estimator's shares by term (PED-ANOVA, fANOVA, and on a complete grid the exact ANOVA, over all
    points and over those above chance)."""
    out = {IMPORTANCE_NAMES.get(k, k): v for k, v in effects.importance.items()}
    if effects.exact_anova:
        out["exact grid ANOVA"] = effects.exact_anova
    if effects.anova_above_chance:
        out["ANOVA above chance"] = effects.anova_above_chance
    return out


def importance_figure(shares: dict[str, dict[str, float]]) -> go.Figure:
    """The estimators' shares side by side, a bar per estimator and term."""
    terms = list(dict.fromkeys(t for s in shares.values() for t in s))
    fig = go.Figure(
        [go.Bar(y=terms, x=[s.get(t, 0.0) for t in terms], name=name, orientation="h",
                hovertemplate=f"{name}<br>%{{y}}: %{{x:.3f}}<extra></extra>") for name, s in shares.items()]
    )  # fmt: skip
    fig.update_layout(
        title={"text": "Importance: share of the variance each estimator gives each term", "x": 0.01},
        barmode="group", xaxis_title="share of the variance (the exact ANOVA adds up to 1)", template=TEMPLATE,
        yaxis={"autorange": "reversed"}, height=160 + 22 * len(terms) * max(1, len(shares)),
        margin={"l": 220, "r": 20, "t": 60, "b": 50},
    )  # fmt: skip
    return fig


def effects_figures(study: optuna.Study, effects: Effects) -> dict[str, go.Figure]:
    """The effects figures by graph id, in reading order: oat changes or strips, interactions, importance."""
    figures = {}
    if effects.oat:
        figures["effects-oat"] = oat_figure(effects.oat, effects.margin)
    else:
        figures["effects-values"] = strips_figure(strips_info(study, effects))
    for i in effects.interactions:
        figures[f"effects-{i.parameters[0]}-x-{i.parameters[1]}"] = interaction_figure(i)
    shares = importance_info(effects)
    if shares:
        figures["effects-importance"] = importance_figure(shares)
    return figures
