"""Grid (capped), random and TPE with the same trial budget on real MNIST: which finds good networks sooner?

Usage:
    python benchmarks/compare_samplers.py --data-dir ../shared/mnist [--trials 30] [--limit-train 5000]

Each sampler runs its own study in a fresh SQLite file under --out. Draws best-so-far validation
accuracy against trials and against wall time, a line per sampler, to compare_samplers.html and
compare_samplers.png in --out, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import NamedTuple

import optuna
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from search import app, atomic, records
from search.analysis.text import format_accuracy
from search.spec import StudySpec

SAMPLERS = ("grid", "random", "tpe")
COLORS = {"grid": "#7f7f7f", "random": "#1f77b4", "tpe": "#d62728"}


class Curve(NamedTuple):
    sampler: str
    trials: list[int]
    seconds: list[float]
    best: list[float]
    best_test: float | None
    wall: float
    values: list[float | None]  # each trial's own validation accuracy, None where it failed


def best_so_far(study: optuna.Study, sampler: str) -> Curve:
    done = sorted((t for t in study.trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    start = min(t.datetime_start for t in done)
    best, best_trial, rows = float("-inf"), None, []
    for i, t in enumerate(done, 1):
        if t.state.name == "COMPLETE" and t.value is not None and t.value > best:
            best, best_trial = t.value, t
        rows.append((i, (t.datetime_complete - start).total_seconds(), best, t.value))
    test = records.test_accuracy(best_trial) if best_trial else None
    cols = list(zip(*rows, strict=True))
    return Curve(sampler, list(cols[0]), list(cols[1]), list(cols[2]), test, rows[-1][1], list(cols[3]))


def figure(curves: list[Curve], title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=["against trials", "against wall time"], horizontal_spacing=0.1)
    for i, c in enumerate(curves):
        # Samplers sharing a seed can share their best trial: dashes keep every line visible.
        style = {"color": COLORS[c.sampler], "width": 2.5, "shape": "hv", "dash": ("solid", "dash", "dot")[i % 3]}
        fig.add_trace(go.Scatter(x=c.trials, y=c.best, name=c.sampler, legendgroup=c.sampler, line=style), 1, 1)
        fig.add_trace(
            go.Scatter(x=c.seconds, y=c.best, name=c.sampler, legendgroup=c.sampler, line=style, showlegend=False), 1, 2
        )
        dots = {"color": COLORS[c.sampler], "size": 6, "opacity": 0.45}
        fig.add_trace(
            go.Scatter(x=c.trials, y=c.values, mode="markers", name=f"{c.sampler}, each trial", marker=dots), 1, 1
        )
    best = [v for c in curves for v in c.best if v > float("-inf")]
    if best:  # the best-so-far lines set the scale; far worse trials fall below it
        fig.update_yaxes(range=[min(best) - 0.03, max(best) + 0.005])
    fig.update_xaxes(title_text="finished trials", row=1, col=1)
    fig.update_xaxes(title_text="seconds since the study started", row=1, col=2)
    fig.update_yaxes(title_text="best validation accuracy so far", row=1, col=1)
    fig.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        height=460,
        width=1100,
        legend={"title": {"text": "sampler"}},
    )
    return fig


def from_database(db: Path) -> list[Curve]:
    """The curves of the three studies of an earlier run (to redraw without training again)."""
    storage = f"sqlite:///{db}"
    return [best_so_far(optuna.load_study(study_name=f"mnist-{k}", storage=storage), k) for k in SAMPLERS]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR, else ./data)")
    parser.add_argument("--trials", type=int, default=30, help="finished trials per sampler")
    parser.add_argument("--limit-train", type=int, default=5000, help="training images per trial")
    parser.add_argument("--device", default="auto", help="device for training")
    parser.add_argument("--seed", type=int, default=1, help="seed of every sampler")
    parser.add_argument("--out", default="reports", help="folder for the studies, HTML and PNG")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = Path(tempfile.mkdtemp(dir=out, prefix="compare-")) / "studies.db"
    curves = []
    for sampler in SAMPLERS:
        spec = StudySpec(
            kind=sampler,
            trials=args.trials,
            storage=f"sqlite:///{db}",
            seed=args.seed,
            data_dir=args.data_dir,
            limit_train=args.limit_train,
            device=args.device,
            pruner="none",
        )
        if code := app.run_study(spec, []):
            raise SystemExit(code)  # interrupted (Ctrl-C) or failed: stop the benchmark
        curves.append(best_so_far(optuna.load_study(study_name=spec.name, storage=spec.storage), sampler))
    title = (
        f"Best validation accuracy so far: {args.trials} trials per sampler, "
        f"{args.limit_train} training images, no pruning"
    )
    fig = figure(curves, title)
    # Written whole or not at all: a kill mid-write leaves the previous figures, not truncated ones.
    atomic.write_text(out / "compare_samplers.html", fig.to_html(include_plotlyjs="inline"))
    atomic.write_bytes(out / "compare_samplers.png", fig.to_image(format="png", scale=1))
    print(f"studies in {db}; figures in {out}/compare_samplers.html and .png\n")
    print("| sampler | best validation accuracy | its test accuracy | trials | wall time (s) |")
    print("|---|---:|---:|---:|---:|")
    for c in curves:
        print(
            f"| {c.sampler} | {format_accuracy(c.best[-1])} | {format_accuracy(c.best_test)} | {c.trials[-1]} "
            f"| {c.wall:.0f} |"
        )


if __name__ == "__main__":
    main()
