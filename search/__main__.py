"""``python -m search``: run grid, random, TPE and one-at-a-time studies, and look at them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import optuna
import sqlalchemy

from search import app
from search.bench import cli as bench_cli
from search.runner import StudyError
from search.spec import DEFAULT_TRIALS, PRUNERS, StudySpec
from search.storage import DEFAULT_STORAGE, StorageError
from trainer.cli import Parser, add_data_args, fail, positive_int, run_cli

STUDIES = {
    "grid": "the full reference grid, 3^7 = 2,187 points, each run once",
    "random": "random search over the space's distributions",
    "tpe": "Bayesian search with Optuna's multivariate TPE sampler",
    "oat": "one parameter at a time: the baseline, then each parameter moved alone (15 runs)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m search", description="Hyperparameter search for MNIST networks on Optuna.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for kind, text in STUDIES.items():
        sub = commands.add_parser(kind, help=text, description=text)
        _add_study_args(sub, kind)
        add_data_args(sub)
    sub = commands.add_parser("dashboard", help="serve optuna-dashboard on the studies")
    _add_storage(sub)
    sub.add_argument(
        "--host", default="127.0.0.1", help="address to bind; anything but loopback is reachable by others"
    )
    sub.add_argument("--port", type=int, default=8080, help="port to listen on (0 picks a free one)")
    sub.add_argument(
        "--artifacts", default=None, help="artifact folder (default: beside the SQLite file, else ./artifacts)"
    )
    sub.add_argument("--allow-writes", action="store_true", help="let the dashboard change studies (it has no login)")
    sub = commands.add_parser("report", help="write one self-contained HTML report of a study")
    _add_storage(sub)
    sub.add_argument("--study-name", required=True, help="the study to report on")
    sub.add_argument("--out", default=None, help="output file (default: reports/STUDY.html)")
    sub = commands.add_parser("best", help="print a study's best trial")
    _add_storage(sub)
    sub.add_argument("--study-name", required=True, help="the study")
    sub = commands.add_parser("list", help="list the studies with their trial counts by state")
    _add_storage(sub)
    sub = commands.add_parser("export", help="write a study's trials as CSV")
    _add_storage(sub)
    sub.add_argument("--study-name", required=True, help="the study")
    sub.add_argument("--out", required=True, help="CSV file to write")
    bench_cli.add_parser(commands)
    return parser


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="sqlite:///FILE.db or postgresql://USER@HOST/DB")


def _add_study_args(parser: argparse.ArgumentParser, kind: str) -> None:
    default_trials = "all points" if kind in ("grid", "oat") else str(DEFAULT_TRIALS)
    default_pruner = "median" if kind in ("random", "tpe") else "none"
    group = parser.add_argument_group("study")
    group.add_argument(
        "--trials",
        type=positive_int,
        default=None,
        help=f"the study's total of finished trials; a re-run runs only the rest (default: {default_trials})",
    )
    group.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    group.add_argument("--study-name", default=None, help=f"study name (default: mnist-{kind})")
    _add_storage(group)
    group.add_argument("--seed", type=int, default=1, help="seed of the sampler, the grid's order and training")
    group.add_argument("--pruner", choices=PRUNERS, default=None, help=f"pruner (default: {default_pruner})")
    group.add_argument("--regularization", action="store_true", help="add dropout and weight decay to the space")
    group.add_argument("--workers", type=positive_int, default=1, help="local worker processes on the study")
    group.add_argument(
        "--heartbeat",
        type=positive_int,
        default=60,
        help="seconds between heartbeats; a trial silent for twice that is failed and re-run",
    )
    group.add_argument(
        "--artifacts", default=None, help="artifact folder (default: beside the SQLite file, else ./artifacts)"
    )
    if kind in ("random", "tpe"):
        group.add_argument(
            "--space",
            choices=("full", "grid"),
            default="full",
            help="full: the distributions; grid: each parameter over its grid values (as bench replay)",
        )
    if kind in ("grid", "oat"):
        group.add_argument(
            "--separate-runs",
            action="store_true",
            help="train every point alone (by default points that differ only in epochs and learning rate "
            "share one run: the same numbers in less time)",
        )


def spec_from_args(args: argparse.Namespace) -> StudySpec:
    return StudySpec(
        kind=args.command,
        study_name=args.study_name,
        storage=args.storage,
        trials=args.trials,
        timeout=args.timeout,
        seed=args.seed,
        pruner=args.pruner,
        regularization=args.regularization,
        heartbeat=args.heartbeat,
        workers=args.workers,
        artifacts=args.artifacts,
        data_dir=args.data_dir,
        validation=args.validation,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        device=args.device,
        download=not args.no_download,
        share_runs=not getattr(args, "separate_runs", False),
        grid_space=getattr(args, "space", "full") == "grid",
    )


def dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if args.command in STUDIES:
        return app.run_study(spec_from_args(args), argv)
    if args.command == "dashboard":
        app.serve_dashboard(args.storage, args.host, args.port, args.artifacts, args.allow_writes)
        return 0
    if args.command == "report":
        return app.report(args.storage, args.study_name, args.out)
    if args.command == "best":
        return app.best(args.storage, args.study_name)
    if args.command == "bench":
        return bench_cli.run(args)
    if args.command == "list":
        return app.list_studies(args.storage)
    return app.export(args.storage, args.study_name, args.out)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)

    def guarded() -> int:
        try:
            return dispatch(args, argv)
        except (StorageError, StudyError) as e:
            fail(str(e), 1)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
            text = str(getattr(e, "orig", None) or e).strip().splitlines()
            fail(f"storage error: {text[0] if text else type(e).__name__}", 1)

    raise SystemExit(run_cli(guarded))


if __name__ == "__main__":
    main()
