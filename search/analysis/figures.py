"""The study's own figures: learning curves by parameter value, and training time by batch size.

Each figure has a function that gathers its data from the trials (tests compare these)
and one that draws it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, NamedTuple

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial
from plotly.subplots import make_subplots

from search.analysis.summary import finished_trials, oat_baseline
from search.analysis.text import format_value

METRICS = (
    ("train_loss", "train loss"),
    ("test_loss", "test loss"),
    ("train_accuracy", "train accuracy"),
    ("test_accuracy", "test accuracy"),
)
MAX_GROUPS = 6  # more distinct values than this are binned
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
BASELINE_COLOR = "#444444"


class CurveGroup(NamedTuple):
    """Mean per-epoch metrics of the trials whose parameter has one value (or lies in one bin)."""

    label: str
    trials: int
    epochs: list[int]
    metrics: dict[str, list[float]]
    is_baseline: bool = False


def learning_curves_info(
    trials: list[FrozenTrial], param: str, baseline: dict[str, Any] | None = None
) -> list[CurveGroup]:
    """Curves grouped by the value of ``param``, ordered by value.

    With a ``baseline`` (one-at-a-time studies) only the baseline and the trials that
    differ from it in ``param`` alone are used: each group is then one run.
    """
    if baseline is not None:
        trials = [t for t in trials if all(t.params.get(k) == v for k, v in baseline.items() if k != param)]
    trials = [t for t in trials if param in t.params]
    if not trials:
        return []
    labels = _group_labels([t.params[param] for t in trials])
    grouped: dict[tuple[Any, str], list[FrozenTrial]] = defaultdict(list)
    for t in trials:
        grouped[labels[t.params[param]]].append(t)
    groups = []
    for (_, label), members in sorted(grouped.items(), key=lambda item: item[0][0]):
        epochs, metrics = _mean_curves(members)
        is_base = baseline is not None and members[0].params[param] == baseline.get(param)
        groups.append(CurveGroup(label, len(members), epochs, metrics, is_base))
    return groups


def _group_labels(values: list[Any]) -> dict[Any, tuple[Any, str]]:
    """Each value's (sort key, label): itself when few, else a quantile bin of numbers."""
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
    if len(distinct) <= MAX_GROUPS or not numeric:
        return {v: (i, format_value(v)) for i, v in enumerate(distinct)}
    cuts = statistics.quantiles(values, n=3)
    bins = [(distinct[0], cuts[0]), (cuts[0], cuts[1]), (cuts[1], distinct[-1])]
    labels = {}
    for v in distinct:
        i = 0 if v <= cuts[0] else 1 if v <= cuts[1] else 2
        labels[v] = (i, f"{format_value(bins[i][0])}–{format_value(bins[i][1])}")
    return labels


def _mean_curves(trials: list[FrozenTrial]) -> tuple[list[int], dict[str, list[float]]]:
    by_epoch: dict[int, list[dict[str, float]]] = defaultdict(list)
    for t in trials:
        for record in t.user_attrs["history"]:
            by_epoch[record["epoch"]].append(record)
    epochs = sorted(by_epoch)
    metrics = {key: [statistics.fmean(r[key] for r in by_epoch[e]) for e in epochs] for key, _ in METRICS}
    return epochs, metrics


def learning_curves_figure(param: str, groups: list[CurveGroup], one_run_each: bool = False) -> go.Figure:
    """Loss and accuracy against epoch: a colour per value of ``param``, solid for train, dashed for test."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss", "accuracy"], horizontal_spacing=0.1)
    for i, group in enumerate(groups):
        color = BASELINE_COLOR if group.is_baseline else COLORS[i % len(COLORS)]
        name = f"{group.label}" + (" (baseline)" if group.is_baseline else "")
        if not one_run_each:
            name += f" · {group.trials} trial{'s' if group.trials != 1 else ''}"
        for key, title in METRICS:
            split_name, kind = key.split("_")
            fig.add_trace(
                go.Scatter(
                    x=group.epochs,
                    y=group.metrics[key],
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=key == "train_loss",
                    line={"color": color, "width": 2, "dash": "solid" if split_name == "train" else "dash"},
                    hovertemplate=f"{param}={group.label}<br>{title}, epoch %{{x}}: %{{y:.4f}}<extra></extra>",
                ),
                row=1,
                col=1 if kind == "loss" else 2,
            )
    subtitle = "one run per value, the rest at the baseline" if one_run_each else "mean over trials"
    fig.update_layout(
        title={"text": f"Learning curves by {param}<br><sup>{subtitle}; solid: train, dashed: test</sup>", "x": 0.01},
        legend={"title": {"text": param}},
        height=400,
        margin={"l": 60, "r": 10, "t": 90, "b": 50},
        template="plotly_white",
    )
    fig.update_xaxes(title_text="epoch")
    if groups and all(v > 0 for g in groups for v in g.metrics["train_loss"] + g.metrics["test_loss"]):
        fig.update_yaxes(type="log", dtick="D2", row=1, col=1)  # D2: label 1, 2, 5 of each decade only
    return fig


class TimingPoint(NamedTuple):
    batch_size: int
    seconds_per_epoch: float
    trial: int


def time_vs_batch_info(trials: list[FrozenTrial]) -> list[TimingPoint]:
    points = []
    for t in trials:
        history = t.user_attrs.get("history") or []
        if "batch_size" in t.params and history:
            points.append(
                TimingPoint(t.params["batch_size"], statistics.fmean(r["seconds"] for r in history), t.number)
            )
    return sorted(points)


def time_vs_batch_figure(points: list[TimingPoint]) -> go.Figure:
    """Seconds per epoch against batch size, a box per batch size."""
    fig = go.Figure()
    for size in sorted({p.batch_size for p in points}):
        ys = [p.seconds_per_epoch for p in points if p.batch_size == size]
        fig.add_trace(
            go.Box(
                y=ys,
                name=str(size),
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": COLORS[0]},
                line={"color": COLORS[0]},
                showlegend=False,
            )
        )
    fig.update_layout(
        title={"text": "Training time per epoch by batch size", "x": 0.01},
        xaxis_title="batch size",
        yaxis_title="seconds per epoch (with evaluation)",
        height=420,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    if points and min(p.seconds_per_epoch for p in points) > 0:
        ratio = max(p.seconds_per_epoch for p in points) / min(p.seconds_per_epoch for p in points)
        if ratio > 20:
            fig.update_yaxes(type="log")
    return fig


def study_figures(study: optuna.Study, params: list[str]) -> dict[str, go.Figure]:
    """The figures saved to a study and shown in its report, by graph id."""
    trials = finished_trials(study)
    baseline = oat_baseline(study)
    figures = {}
    for param in params:
        groups = learning_curves_info(trials, param, baseline)
        if groups:
            figures[f"curves-{param}"] = learning_curves_figure(param, groups, one_run_each=baseline is not None)
    timing = time_vs_batch_info(trials)
    if timing:
        figures["time-vs-batch-size"] = time_vs_batch_figure(timing)
    return figures
