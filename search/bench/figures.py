"""The replay drawn: best-so-far validation accuracy against trials and against simulated time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import DEFAULT_PLOTLY_COLORS
from plotly.subplots import make_subplots

from search.bench.summary import SamplerSummary, mean_interval


def replay_figure(summaries: dict[str, SamplerSummary], times: np.ndarray, best: float, title: str) -> go.Figure:
    """Mean best-so-far with its 95% interval per sampler, left against trials, right against simulated time."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("against finished trials", "against simulated time"))
    for i, (name, s) in enumerate(summaries.items()):
        color = DEFAULT_PLOTLY_COLORS[i % len(DEFAULT_PLOTLY_COLORS)]
        trials = np.arange(1, s.by_trial.shape[1] + 1)
        for col, (x, samples) in enumerate(((trials, s.by_trial), (times / 60, s.by_time)), start=1):
            mean, ci = mean_interval(samples, best)
            band = go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=np.concatenate([ci[:, 1], ci[::-1, 0]]),
                fill="toself",
                fillcolor=color.replace("rgb", "rgba").replace(")", ", 0.15)"),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            )
            line = go.Scatter(x=x, y=mean, name=name, line={"color": color}, showlegend=col == 1, legendgroup=name)
            fig.add_trace(band, row=1, col=col)
            fig.add_trace(line, row=1, col=col)
    for col in (1, 2):
        fig.add_hline(y=best, line_dash="dash", line_color="gray", row=1, col=col)
    # Best-so-far starts at 0 before a trial completes; the interesting range is near the best.
    low = min(float(np.percentile(s.by_trial[:, min(4, s.by_trial.shape[1] - 1)], 10)) for s in summaries.values())
    fig.update_yaxes(title_text="best validation accuracy so far", range=[max(low, best - 0.1), best + 0.003], col=1)
    fig.update_yaxes(range=[max(low, best - 0.1), best + 0.003], col=2)
    fig.update_xaxes(title_text="trials", col=1)
    fig.update_xaxes(title_text="simulated minutes (recorded epoch times)", col=2)
    fig.update_layout(title=title, width=1100, height=450, template="plotly_white")
    return fig


def write(fig: go.Figure, out: str | Path) -> tuple[Path, Path | None]:
    """Write the figure as HTML at ``out`` (whole or not at all) and as a PNG beside it; the PNG is None when
    kaleido cannot draw or write it."""
    from search import atomic

    out = atomic.write_text(out, fig.to_html(include_plotlyjs=True))  # OSError when it cannot be written
    png = out.with_suffix(".png")
    try:
        fig.write_image(png, scale=1)
    except Exception:  # kaleido absent or without a browser: the HTML is the report, the PNG an extra
        return out, None
    return out, png
