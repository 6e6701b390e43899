"""``python -m search bench build | replay``: the command line of the tabular benchmark."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from search.bench.table import TableError

SHIPPED = Path(__file__).with_name("data") / "mnist_grid.npz"


def add_parser(
    commands: argparse._SubParsersAction, text: str, formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter
) -> None:
    """Add ``bench`` (described by ``text``) and its ``build``, ``merge`` and ``replay`` subcommands."""
    from trainer.cli import add_data_args, positive_int

    bench = commands.add_parser("bench", help=text, description=text, formatter_class=formatter)
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True, parser_class=type(bench))
    build = sub.add_parser("build", help="record every grid point's learning curves in a table file")
    build.add_argument("--out", required=True, help="the table file to write (.npz)")
    build.add_argument("--seeds", type=positive_int, default=1, help="training seeds per point: SEED, SEED+1, ...")
    build.add_argument("--seed", type=int, default=1, help="the first training seed")
    build.add_argument("--from-study", default=None, help="read a finished grid study instead of training")
    build.add_argument("--storage", default="sqlite:///studies.db", help="the storage of --from-study")
    build.add_argument("--note", default=None, help="a line for the header, e.g. what is unusual about the data")
    add_data_args(build)
    merge = sub.add_parser("merge", help="join tables of the same grid and data built with different seeds")
    merge.add_argument("tables", nargs="+", help="the table files, their seeds in this order")
    merge.add_argument("--out", required=True, help="the table file to write (.npz)")
    merge.add_argument("--note", default=None, help="a line for the header, e.g. what is unusual about the data")
    replay = sub.add_parser("replay", help="run samplers against a table over many seeds, in simulated time")
    _add_replay_args(replay)


def _add_replay_args(parser: argparse.ArgumentParser) -> None:
    from search.bench.names import PRUNERS, SAMPLERS
    from trainer.cli import positive_int

    parser.add_argument("--table", default=str(SHIPPED), help="the table file (default: the one shipped)")
    parser.add_argument("--samplers", default="grid,random,tpe,gp", help=f"comma-separated, from {', '.join(SAMPLERS)}")
    parser.add_argument("--trials", type=positive_int, default=100, help="finished trials per repeat")
    parser.add_argument("--repeats", type=positive_int, default=20, help="repeats per sampler (seeds SEED, SEED+1...)")
    parser.add_argument("--workers", type=positive_int, default=1, help="simulated workers running trials at once")
    parser.add_argument("--pruner", choices=PRUNERS, default="none", help="pruner acting on the recorded curves")
    parser.add_argument("--seed", type=int, default=1, help="the first repeat's seed")
    parser.add_argument("--processes", type=positive_int, default=2, help="processes the repeats are spread over")
    parser.add_argument("--out", default=None, help="write a plotly HTML report here, and a PNG beside it")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="what to print")


def run(args: argparse.Namespace) -> int:
    """Dispatch ``bench build`` or ``bench replay``; user errors end in one line."""
    from trainer.cli import fail

    try:
        if args.bench_command == "build":
            return _build(args)
        if args.bench_command == "merge":
            return _merge(args)
        return _replay(args)
    except TableError as e:
        fail(str(e), 1)


def _build(args: argparse.Namespace) -> int:
    from search.bench.build import build_by_training, build_from_study, grid_values

    if args.from_study is not None:
        import optuna

        from search.storage import mask_url, open_reader

        storage = open_reader(args.storage)
        try:
            if storage is None:
                raise KeyError(args.from_study)
            study = optuna.load_study(study_name=args.from_study, storage=storage)
        except KeyError:
            raise TableError(f"no study {args.from_study!r} in {mask_url(args.storage)}") from None
        table = build_from_study(study)
    else:
        import torch

        from trainer import load_mnist, resolve_device, split

        torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        splits = split(
            load_mnist(args.data_dir, device, not args.no_download), args.validation, args.limit_train, args.limit_test
        )
        data = {
            "source": "MNIST",
            "train_images": len(splits.train_y),
            "validation_images": len(splits.val_y),
            "test_images": len(splits.test_y),
            "validation": "the last N training images" if args.validation else "the test set",
        }
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            print(
                f"run {done}/{total}, {elapsed:.0f} s, about {elapsed / done * (total - done):.0f} s left",
                file=sys.stderr,
                flush=True,
            )

        values, fidelities = grid_values()
        seeds = list(range(args.seed, args.seed + args.seeds))
        table = build_by_training(values, fidelities, seeds, splits, data, progress)
    path = table.save(args.out)
    print(
        f"wrote {path}: {table.n_points} points x {len(table.seeds)} seeds x {max(table.fidelities)} epochs, "
        f"best validation accuracy {table.best():.4f}"
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from search.bench.table import load, merge

    table = merge([load(path) for path in args.tables])
    if args.note:
        table.info["note"] = args.note
    path = table.save(args.out)
    print(f"wrote {path}: seeds {list(table.seeds)}, best validation accuracy {table.best():.4f}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import json

    from search.bench import figures
    from search.bench.replay import ReplayError, replay
    from search.bench.summary import summarize, to_json
    from search.bench.table import load
    from trainer.cli import fail

    table = load(args.table)
    samplers = [name.strip() for name in args.samplers.split(",") if name.strip()]
    try:
        runs = replay(
            args.table, samplers, args.trials, args.repeats, args.workers, args.pruner, args.seed, args.processes
        )
    except ReplayError as e:
        fail(str(e), 2)
    best = table.best()
    summaries, times = summarize(runs, best)
    header = table.header()
    about = {k: header.get(k) for k in ("content_hash", "data", "note", "seeds", "device", "created")}
    result = to_json(
        summaries,
        times,
        {"path": str(args.table), "points": len(table.points()) * len(table.fidelities), **about, "best": best},
    )
    if args.out is not None:
        title = f"{args.repeats} repeats x {args.trials} trials, {args.workers} worker(s), pruner {args.pruner}"
        html, png = figures.write(figures.replay_figure(summaries, times, best, title), args.out)
        print(f"wrote {html}" + (f" and {png}" if png else " (no PNG: kaleido could not draw)"), file=sys.stderr)
    if args.format == "json":
        print(json.dumps(result))
    else:
        print(terminal_table(result, args.trials))
    return 0


def terminal_table(result: dict, trials: int) -> str:
    """The replay's summary as aligned text, one row per sampler."""
    table = result["table"]
    lines = [
        f"table {table['path']}: {table['points']} points, seeds {table['seeds']}, data {table['data']}",
        *([f"note: {table['note']}"] if table.get("note") else []),
        f"best validation accuracy in the table: {table['best']:.4f}",
        "",
        f"{'sampler':<8} {f'best after {trials} (95% CI)':>28} {'regret':>7} {'rank':>5} {'<=0.1pt':>8} "
        f"{'<=0.2pt':>8} {'trials to 0.2pt':>15} {'sim. min':>9} {'ask ms':>7} (CPU per trial)",
    ]
    for name, s in result["samplers"].items():
        mean, (lo, hi) = s["best_so_far_mean"][-1], s["best_so_far_ci"][-1]
        to = s["trials_to_0.002"]
        lines.append(
            f"{name:<8} {f'{mean:.4f} [{lo:.4f}, {hi:.4f}]':>28} {s['regret_mean'][-1]:>7.4f} {s['mean_rank']:>5.2f} "
            f"{s['within_0.001']:>8.0%} {s['within_0.002']:>8.0%} {'-' if to is None else f'{to:g}':>15} "
            f"{s['simulated_seconds_mean'] / 60:>9.1f} {1000 * s['ask_seconds_per_trial']:>7.1f}"
        )
    return "\n".join(lines)
