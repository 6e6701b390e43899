"""The study's own figures: learning curves by parameter value, and training time by batch size.

Each figure has a function that gathers its data from the trials (tests compare these)
and one that draws it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial
from plotly.subplots import make_subplots
from scipy import stats

from search import records
from search.analysis.effects import Effects, study_effects
from search.analysis.effects_figures import effects_figures
from search.analysis.levels import levels
from search.analysis.summary import finished_trials, oat_baseline

# What each view draws: (history key, split, kind); the objective is validation accuracy.
VIEWS = {
    "val": (("val_loss", "validation", "loss"), ("val_accuracy", "validation", "accuracy"),
            ("train_loss", "train", "loss"), ("train_accuracy", "train", "accuracy")),
    "test": (("test_loss", "test", "loss"), ("test_accuracy", "test", "accuracy")),
}  # fmt: skip
METRICS = tuple(dict.fromkeys(key for view in VIEWS.values() for key, _, _ in view))
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
BASELINE_COLOR = "#444444"


class CurveGroup(NamedTuple):
    """Per-epoch means of the trials whose parameter has one value (or lies in one bin).

    Each epoch's mean is over the trials that reached it; ``counts`` says how many did,
    so a short trial ending does not pass for a jump in the curve.
    """

    label: str
    trials: int
    epochs: list[int]
    metrics: dict[str, list[float]]
    counts: list[int]
    is_baseline: bool = False


def learning_curves_info(
    trials: list[FrozenTrial], param: str, baseline: dict[str, Any] | None = None
) -> list[CurveGroup]:
    """Curves grouped by the value of ``param`` (continuous values binned in terciles), ordered by value.

    A trial's curve is the mean over its seeds. With a ``baseline`` (one-at-a-time
    studies) only the baseline and the trials that differ from it in ``param`` alone are
    used: each group is then one point.
    """
    if baseline is not None:
        trials = [t for t in trials if all(t.params.get(k) == v for k, v in baseline.items() if k != param)]
    trials = [t for t in trials if param in t.params]
    if not trials:
        return []
    lv = levels([t.params[param] for t in trials], getattr(trials[0].distributions.get(param), "choices", ()))
    grouped: dict[int, list[FrozenTrial]] = defaultdict(list)
    for t in trials:
        grouped[lv.index[t.params[param]]].append(t)
    groups = []
    for level, members in sorted(grouped.items()):
        epochs, metrics, counts = mean_curves([records.mean_history(t) for t in members])
        is_base = baseline is not None and members[0].params[param] == baseline.get(param)
        groups.append(CurveGroup(lv.labels[level], len(members), epochs, metrics, counts, is_base))
    return groups


def mean_curves(histories: list[records.History]) -> tuple[list[int], dict[str, list[float]], list[int]]:
    """Each epoch's mean of every metric over the histories that reached that epoch, and how many did."""
    by_epoch: dict[int, list[dict[str, float]]] = defaultdict(list)
    for history in histories:
        for record in history:
            by_epoch[int(record["epoch"])].append(record)
    epochs = sorted(by_epoch)
    metrics = {
        key: [float(np.mean([r[key] for r in by_epoch[e]])) for e in epochs]
        for key in METRICS
        if all(key in r for e in epochs for r in by_epoch[e])
    }
    return epochs, metrics, [len(by_epoch[e]) for e in epochs]


def learning_curves_figure(
    param: str, groups: list[CurveGroup], one_run_each: bool = False, view: str = "val"
) -> go.Figure:
    """Loss and accuracy against epoch, a colour per value of ``param``.

    ``view="val"``: validation solid, train dotted; ``view="test"``: the test curves alone, lighter.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss", "accuracy"], horizontal_spacing=0.1)
    for i, group in enumerate(groups):
        color = BASELINE_COLOR if group.is_baseline else COLORS[i % len(COLORS)]
        name = f"{group.label}" + (" (baseline)" if group.is_baseline else "")
        if not one_run_each:
            name += f" · {group.trials} trial{'s' if group.trials != 1 else ''}"
        for key, split, kind in VIEWS[view]:
            if key not in group.metrics:
                continue
            fig.add_trace(
                go.Scatter(
                    x=group.epochs, y=group.metrics[key], customdata=group.counts, mode="lines", name=name,
                    legendgroup=name, showlegend=kind == "loss" and split != "train",
                    opacity=0.55 if view == "test" else 1.0,
                    line={"color": color, "width": 1 if split == "train" else 2,
                          "dash": "dot" if split == "train" else "solid"},
                    hovertemplate=f"{param}={group.label}<br>{split} {kind}, epoch %{{x}}: %{{y:.4f}}"
                    + ("" if one_run_each else " (mean of %{customdata} trials)") + "<extra></extra>",
                ),
                row=1, col=1 if kind == "loss" else 2,
            )  # fmt: skip
    how = (
        "one run per value, the rest at the baseline"
        if one_run_each
        else "at each epoch the mean over the trials that reached it"
    )
    lines = "solid: validation, dotted: train" if view == "val" else "test set"
    fig.update_layout(
        title={"text": f"Learning curves by {param}{' (test)' if view == 'test' else ''}<br><sup>{how}; {lines}</sup>",
               "x": 0.01},
        legend={"title": {"text": param}}, height=400 if view == "val" else 320,
        margin={"l": 60, "r": 10, "t": 90, "b": 50}, template="plotly_white",
    )  # fmt: skip
    fig.update_xaxes(title_text="epoch")
    losses = [v for g in groups for key, _, kind in VIEWS[view] if kind == "loss" for v in g.metrics.get(key, [])]
    if losses and min(losses) > 0:
        ticks = log_ticks(min(losses), max(losses))
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], row=1, col=1)
    return fig


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 of each decade from ``low`` to ``high`` (and one beyond each end), to be labelled in full:
    plotly's own minor labels are a bare 2 and 5, so that 0.5 and 0.05 look alike."""
    first, last = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))
    ticks = [m * 10.0**k for k in range(first, last + 1) for m in (1, 2, 5)]
    inside = [i for i, v in enumerate(ticks) if low <= v <= high]
    if not inside:
        return [v for v in ticks if v <= high][-1:] + [v for v in ticks if v >= low][:1]
    return [float(f"{v:.12g}") for v in ticks[max(inside[0] - 1, 0) : inside[-1] + 2]]


class TimingPoint(NamedTuple):
    """One trial's training time per network-epoch."""

    batch_size: int
    seconds_per_network_epoch: float
    trial: int
    networks: int  # trained together in one shared run


def time_vs_batch_info(trials: list[FrozenTrial]) -> list[TimingPoint]:
    """Each trial's mean seconds per epoch divided by the networks its shared run trained at once."""
    runs = [t.user_attrs.get(records.SHARED_RUN_ATTR, ("alone", t.number)) for t in trials]
    sizes = {run: runs.count(run) for run in set(runs)}
    points = []
    for t, run in zip(trials, runs, strict=True):
        history = records.mean_history(t)
        if "batch_size" in t.params and history:
            seconds = float(np.mean([r["seconds"] for r in history]))
            points.append(TimingPoint(t.params["batch_size"], seconds / sizes[run], t.number, sizes[run]))
    return sorted(points)


def time_vs_batch_figure(points: list[TimingPoint]) -> go.Figure:
    """Seconds per network-epoch against batch size, a box per batch size."""
    fig = go.Figure()
    for size in sorted({p.batch_size for p in points}):
        mine = [p for p in points if p.batch_size == size]
        fig.add_trace(
            go.Box(
                y=[p.seconds_per_network_epoch for p in mine], name=str(size), boxpoints="all", jitter=0.4,
                pointpos=0, marker={"color": COLORS[0]}, line={"color": COLORS[0]}, showlegend=False,
                customdata=[[p.trial, p.networks] for p in mine],
                hovertemplate="trial %{customdata[0]}: %{y:.3f} s (its run trained %{customdata[1]} network(s))"
                "<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        title={"text": "Training time per network-epoch by batch size<br><sup>a shared run's epoch divided by "
                       "the networks it trained at once</sup>", "x": 0.01},
        xaxis_title="batch size", yaxis_title="seconds per network-epoch (with evaluation)", height=420,
        template="plotly_white", margin={"l": 60, "r": 20, "t": 80, "b": 50},
    )  # fmt: skip
    seconds = [p.seconds_per_network_epoch for p in points]
    if seconds and min(seconds) > 0 and max(seconds) / min(seconds) > 20:
        fig.update_yaxes(type="log")
    return fig


def study_figures(
    study: optuna.Study, params: list[str], effects: Effects | None = None, test_view: bool = False
) -> dict[str, go.Figure]:
    """The figures saved to a study and shown in its report, by graph id: effects, curves, timing.

    ``effects`` are gathered when not given (none before a trial completes);
    ``test_view`` adds the lighter test-set curves (``curves-test-PARAM``).
    """
    effects = effects or study_effects(study)
    figures = effects_figures(study, effects) if effects is not None else {}
    trials = finished_trials(study)
    baseline = oat_baseline(study)
    for param in params:
        groups = learning_curves_info(trials, param, baseline)
        if len(groups) > 1:  # a parameter with one value in the study has no curves to compare
            figures[f"curves-{param}"] = learning_curves_figure(param, groups, one_run_each=baseline is not None)
            if test_view:
                figures[f"curves-test-{param}"] = learning_curves_figure(param, groups, baseline is not None, "test")
    x_param, lines = interaction_info(study)
    if lines:
        figures["interaction"] = interaction_figure(x_param, lines)
    timing = time_vs_batch_info(trials)
    if timing:
        figures["time-vs-batch-size"] = time_vs_batch_figure(timing)
    return figures


class InteractionLine(NamedTuple):
    """Validation accuracy against the first varied parameter at one value of another (a factorial study).

    A point is the mean over the seeds of the mean over the trials at that pair of values
    (averaged over the other varied parameters); ``half_widths`` are the 95% t intervals'
    half widths over the seeds (None with one seed).
    """

    by: str
    label: str
    x: list[str]
    means: list[float]
    half_widths: list[float] | None


def interaction_info(study: optuna.Study) -> tuple[str, list[InteractionLine]]:
    """The x parameter and the lines of each other varied parameter of a ``--vary`` study ("", [] otherwise)."""
    vary = [name for name in str(study.user_attrs.get("vary", "")).split(",") if name]
    trials = [t for t in finished_trials(study) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(vary) < 2 or not trials:
        return "", []
    x_param, lines = vary[0], []
    x_levels = levels([t.params[x_param] for t in trials])
    for by in vary[1:]:
        by_levels = levels([t.params[by] for t in trials], getattr(trials[0].distributions.get(by), "choices", ()))
        cells: dict[tuple[int, int], list[list[float]]] = defaultdict(list)
        for t in trials:
            cells[by_levels.index[t.params[by]], x_levels.index[t.params[x_param]]].append(records.seed_values(t))
        for b, label in enumerate(by_levels.labels):
            xs = [i for i in range(len(x_levels.labels)) if (b, i) in cells]
            # seeds x trials of the cell: each seed's mean over the cell's trials, then their mean and spread
            per_seed = [np.nanmean(np.array(cells[b, i], dtype=float), axis=0) for i in xs]
            means = [float(np.mean(s)) for s in per_seed]
            half = None
            if all(len(s) > 1 for s in per_seed):
                half = [float(stats.t.ppf(0.975, len(s) - 1) * stats.sem(s)) for s in per_seed]
            lines.append(InteractionLine(by, label, [x_levels.labels[i] for i in xs], means, half))
    return x_param, lines


def interaction_figure(x_param: str, lines: list[InteractionLine]) -> go.Figure:
    """One panel per other varied parameter: accuracy against ``x_param``, one line per value."""
    panels = list(dict.fromkeys(line.by for line in lines))
    titles = [f"one line per {p}" for p in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, shared_yaxes=True)
    for col, panel in enumerate(panels, start=1):
        mine = [line for line in lines if line.by == panel]
        for k, line in enumerate(mine):
            error = {"type": "data", "array": line.half_widths, "visible": True} if line.half_widths else None
            fig.add_trace(
                go.Scatter(
                    x=line.x, y=line.means, error_y=error, mode="lines+markers", name=line.label,
                    line={"color": COLORS[k % len(COLORS)]}, legendgroup=panel, legendgrouptitle_text=panel,
                    hovertemplate=f"{panel} = {line.label}, {x_param} = %{{x}}: %{{y:.4f}}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
        fig.update_xaxes(title_text=x_param, type="category", row=1, col=col)
    fig.update_yaxes(title_text="validation accuracy (mean over seeds, 95% t interval)", row=1, col=1)
    fig.update_layout(
        title={"text": f"Validation accuracy against {x_param}<br><sup>each point averages the other varied "
                       "parameters; lines that are not parallel are an interaction</sup>", "x": 0.01},
        template="plotly_white", height=460, margin={"l": 70, "r": 20, "t": 90, "b": 50},
    )  # fmt: skip
    return fig
