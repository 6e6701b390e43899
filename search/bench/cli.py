"""``python -m search bench build | replay``: the command line of the tabular benchmark."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from search.bench.table import TableError

SHIPPED = Path(__file__).with_name("data") / "mnist_grid.npz"
# Bounds that keep a replay's memory and time finite (each trial is one ask and tell of an Optuna study).
MAX_TRIALS = 100_000
MAX_REPEATS = 10_000


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
    build.add_argument(
        "--storage",
        default="sqlite:///studies.db",
        help="the storage of --from-study: sqlite:///FILE.db, journal:FILE.log or postgresql://... "
        "(default: %(default)s)",
    )
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
    parser.add_argument(
        "--samplers",
        default="grid,shuffled,random,tpe,gp",
        help=f"comma-separated, from {', '.join(SAMPLERS)} (shuffled: the grid in a uniformly random order)",
    )
    parser.add_argument(
        "--trials",
        type=_at_most(MAX_TRIALS),
        default=100,
        help=f"finished trials per repeat, 1..{MAX_TRIALS} (default 100; grid stops at the grid's size)",
    )
    parser.add_argument(
        "--repeats", type=_at_most(MAX_REPEATS), default=20,
        help=f"repeats per sampler (seeds SEED, SEED+1...), 1..{MAX_REPEATS} (default 20)",
    )  # fmt: skip
    parser.add_argument("--workers", type=positive_int, default=1, help="simulated workers running trials at once")
    parser.add_argument("--pruner", choices=PRUNERS, default="none", help="pruner acting on the recorded curves")
    parser.add_argument("--seed", type=int, default=1, help="the first repeat's seed")
    parser.add_argument("--processes", type=positive_int, default=2, help="processes the repeats are spread over")
    parser.add_argument("--out", default=None, help="write a plotly HTML report here, and a PNG beside it")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="what to print")
    parser.add_argument(
        "--objectives",
        default="accuracy",
        metavar="accuracy[,parameters|,seconds]",
        help="accuracy, or accuracy and one cost: a multi-objective replay (no pruner), scored by the hypervolume "
        "of the test accuracy of each repeat's selected front (default: accuracy)",
    )


def _at_most(high: int) -> Callable[[str], int]:
    """An argparse type: an integer in 1..``high``."""
    from trainer.cli import positive_int

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be an integer in 1..{high}, got {text!r}")
        return value

    return parse


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
    if not samplers:
        fail(f"--samplers {args.samplers!r} names no sampler: pass some of grid, random, tpe, gp", 2)
    try:
        objectives = tuple(name.strip() for name in args.objectives.split(","))
        runs = replay(
            args.table,
            samplers,
            args.trials,
            args.repeats,
            args.workers,
            args.pruner,
            args.seed,
            args.processes,
            objectives,
        )
    except ReplayError as e:
        fail(str(e), 2)
    best, best_test = table.best(), table.best("test_accuracy")
    summaries, times = summarize(runs, best)
    header = table.header()
    about = {k: header.get(k) for k in ("content_hash", "data", "note", "seeds", "device", "created")}
    result = to_json(
        summaries,
        times,
        {
            "path": str(args.table),
            "points": len(table.points()) * len(table.fidelities),
            **about,
            "best": best,
            "best_test": best_test,
        },
    )
    if args.out is not None:
        title = f"{args.repeats} repeats x {args.trials} trials, {args.workers} worker(s), pruner {args.pruner}"
        try:
            html, png = figures.write(figures.replay_figure(summaries, times, best, title, best_test), args.out)
        except OSError as e:
            raise TableError(f"cannot write {args.out!r}: {e.strerror or e}") from None
        print(f"wrote {html}" + (f" and {png}" if png else " (no PNG: kaleido could not draw)"), file=sys.stderr)
    fronts = None
    if len(objectives) > 1:
        from search.bench.fronts import fronts_text, summarize_fronts
        from search.bench.problem import TableProblem

        fronts = summarize_fronts(runs, TableProblem(table), objectives[1], args.trials)
        result["fronts"] = fronts
        for name, scores in fronts["samplers"].items():
            result["samplers"][name]["hypervolume"] = scores
    if args.format == "json":
        print(json.dumps(result))
    else:
        print(terminal_table(result, args.trials))
        if fronts is not None:
            print(f"\n{fronts_text(fronts)}")
    return 0


def _ci(mean: float, ci: list[float]) -> str:
    return f"{mean:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"


def terminal_table(result: dict, trials: int) -> str:
    """The replay's summary as aligned text: what each sampler's pick tests at, then the samplers paired."""
    table = result["table"]
    samplers = result["samplers"]
    after = next(iter(result["paired"].values()))["after"] if result["paired"] else [trials]
    repeats = len(next(iter(samplers.values()))["repeats"])
    lines = [
        f"table {table['path']}: {table['points']} points, seeds {table['seeds']}, data {table['data']}",
        *([f"note: {table['note']}"] if table.get("note") else []),
        f"the table's best: validation {table['best']:.4f}, test {table['best_test']:.4f}; {repeats} repeats, "
        "mean and 95% t interval over them",
        "",
        "test accuracy of each repeat's best-validation trial (what a user gets), after N trials:",
        f"{'sampler':<9}" + "".join(f"{f'after {n}':>26}" for n in after) + f"{'test regret':>12}",
    ]
    for name, s in samplers.items():
        cells = "".join(f"{_ci(s['test_of_best_mean'][n - 1], s['test_of_best_ci'][n - 1]):>26}" for n in after)
        lines.append(f"{name:<9}{cells}{s['test_regret_mean'][-1]:>12.4f}")
    lines += [
        "",
        f"best validation accuracy so far (what the samplers selected by) after {trials} trials:",
        f"{'sampler':<9} {'best (95% CI)':>26} {'regret':>7} {'rank':>5} {'<=0.2pt (Wilson 95%)':>22} "
        f"{'trials to 0.2pt':>15} {'sim. min':>9} {'ask ms':>7} (CPU per trial)",
    ]
    for name, s in samplers.items():
        to, share, (lo, hi) = s["trials_to_0.002"], s["within_0.002"], s["within_0.002_ci"]
        lines.append(
            f"{name:<9} {_ci(s['best_so_far_mean'][-1], s['best_so_far_ci'][-1]):>26} {s['regret_mean'][-1]:>7.4f} "
            f"{s['mean_rank']:>5.2f} {f'{share:.0%} [{lo:.0%}, {hi:.0%}]':>22} {'-' if to is None else f'{to:g}':>15} "
            f"{s['simulated_seconds_mean'] / 60:>9.1f} {1000 * s['ask_seconds_per_trial']:>7.1f}"
        )
    if result["paired"]:
        lines += [
            "",
            "paired by repeat seed, on the test accuracy of each repeat's pick: A - B, mean difference and 95% t "
            "interval, P(A higher) with ties counting half and its Wilson 95% interval",
            f"{'A - B':<18} {'after':>5} {'difference (95% CI)':>28} {'P(A higher)':>20} {'A/tie/B':>9}",
        ]
        for key, p in result["paired"].items():
            for i, n in enumerate(p["after"]):
                (lo, hi), (plo, phi) = p["ci"][i], p["probability_of_improvement_ci"][i]
                diff = f"{p['mean_difference'][i]:+.4f} [{lo:+.4f}, {hi:+.4f}]"
                counts = f"{p['wins'][i]}/{p['ties'][i]}/{p['losses'][i]}"
                prob = f"{p['probability_of_improvement'][i]:.2f} [{plo:.2f}, {phi:.2f}]"
                lines.append(f"{key.replace('-', ' - '):<18} {n:>5} {diff:>28} {prob:>20} {counts:>9}")
    return "\n".join(lines)
