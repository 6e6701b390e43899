"""The replay drawn: the test accuracy of each repeat's pick, and best-so-far validation against trials and time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import DEFAULT_PLOTLY_COLORS
from plotly.subplots import make_subplots

from search.bench.summary import SamplerSummary, mean_interval


def replay_figure(
    summaries: dict[str, SamplerSummary], times: np.ndarray, best: float, title: str, best_test: float | None = None
) -> go.Figure:
    """Per sampler, the mean with its 95% interval over repeats: the test accuracy of the best-validation trial
    against trials (what a user gets), then best-so-far validation against trials and against simulated time."""
    best_test = best if best_test is None else best_test
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "test accuracy of the pick (best validation)",
            "best validation so far",
            "best validation, against time",
        ),
        horizontal_spacing=0.07,
    )
    for i, (name, s) in enumerate(summaries.items()):
        color = DEFAULT_PLOTLY_COLORS[i % len(DEFAULT_PLOTLY_COLORS)]
        trials = np.arange(1, s.by_trial.shape[1] + 1)
        panels = ((trials, s.test_of_best, best_test), (trials, s.by_trial, best), (times / 60, s.by_time, best))
        for col, (x, samples, high) in enumerate(panels, start=1):
            mean, ci = mean_interval(samples, high)
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
    for col, ref in ((1, best_test), (2, best), (3, best)):
        fig.add_hline(y=ref, line_dash="dash", line_color="gray", row=1, col=col)
    # Curves start at 0 before a trial completes; the interesting range is near the best.
    low = min(float(np.percentile(s.by_trial[:, min(4, s.by_trial.shape[1] - 1)], 10)) for s in summaries.values())
    top = max(best, best_test) + 0.003
    for col in (1, 2, 3):
        fig.update_yaxes(range=[max(low, min(best, best_test) - 0.1), top], col=col)
    fig.update_yaxes(title_text="accuracy (dashed: the table's best)", col=1)
    fig.update_xaxes(title_text="trials", col=1)
    fig.update_xaxes(title_text="trials", col=2)
    fig.update_xaxes(title_text="simulated minutes (recorded epoch times)", col=3)
    fig.update_layout(title=title, width=1300, height=450, template="plotly_white")
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
