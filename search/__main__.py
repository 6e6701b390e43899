"""``python -m search``: run grid, random, TPE and one-at-a-time studies, and look at them."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence

from search._startup import quiet_interrupts

with quiet_interrupts():  # Optuna's import; torch, plotly and the dashboard load where a command needs them
    import optuna
    import sqlalchemy

    from search.bench import cli as bench_cli
    from search.run.study import StudyError
    from search.spec import COMPILE, KIND_TABLE, MAX_HEARTBEAT, MAX_SEED, MAX_SEEDS, PRUNERS, StudySpec
    from search.storage import DEFAULT_STORAGE, StorageError, failure_message
    from trainer.cli import HelpFormatter, Parser, add_data_args, fail, int_in, positive_int, run_cli

READERS = {
    "dashboard": "serve optuna-dashboard on the studies (read-only unless --allow-writes)",
    "report": "write one self-contained HTML report of a study",
    "best": "print a study's best trial and where its model file is",
    "list": "list the studies with their trial counts by state",
    "export": "write a study's trials as CSV",
}
TOOLS = {"clean": "remove from the artifact folder the checkpoints of studies no longer in the storage"}
ANALYSES = {
    "effects": "which choices matter in a study: oat verdicts (matters, negligible, undetermined), main "
    "effects, interactions, importance, with 95% intervals",
    "bench": "the grid as a tabular benchmark: build a table, replay samplers on it",
}


def seed_int(text: str) -> int:
    """A seed in 0..2**31-1: worker offsets and further training seeds added to it stay valid everywhere."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, got {text!r}")
    return value


def margin_float(text: str) -> float:
    """The verdicts' margin: a number above 0 and below 0.1 (a tenth of all images; ``inf`` and NaN are not)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number above 0 and below 0.1, got {text!r}") from None
    if not 0 < value < 0.1:
        raise argparse.ArgumentTypeError(f"must be a number above 0 and below 0.1, got {text!r}")
    return value


def objective_names(text: str) -> tuple[str, ...]:
    """``accuracy,parameters`` as a tuple; StudySpec checks the names."""
    return tuple(name.strip() for name in text.split(","))


def port_int(text: str) -> int:
    """A TCP port, 0..65535 (0 picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in 0..65535, got {text!r}")
    return value


def study_name(text: str) -> str:
    """A study name: not empty and not only blanks."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a non-empty name, got {text!r}")
    return text


ONLY_STUDY = "the study (default: the storage's only one)"
STUDIES = {name: kind.summary for name, kind in KIND_TABLE.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m search",
        description="Hyperparameter search for MNIST networks on Optuna.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)

    for kind, text in STUDIES.items():
        sub = add(kind, text)
        _add_study_args(sub, kind)
        add_data_args(sub)
    sub = add("dashboard", READERS["dashboard"])
    _add_storage(sub)
    sub.add_argument(
        "--host", default="127.0.0.1", help="address to bind; anything but loopback is reachable by others"
    )
    sub.add_argument("--port", type=port_int, default=8080, help="port to listen on, 0..65535 (0 picks a free one)")
    sub.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name to serve besides 127.0.0.1, localhost and --host (repeatable)",
    )
    _add_artifacts(sub)
    sub.add_argument("--allow-writes", action="store_true", help="let the dashboard change studies (it has no login)")
    sub = add("report", READERS["report"])
    _add_storage(sub)
    sub.add_argument("--study-name", type=study_name, default=None, help=ONLY_STUDY)
    sub.add_argument("--out", default=None, help="output file (default: reports/STUDY.html)")
    text = ANALYSES["effects"]
    sub = commands.add_parser(
        "effects", help=text.replace("%", "%%"), description=text, formatter_class=HelpFormatter
    )
    _add_storage(sub)
    sub.add_argument("--study-name", type=study_name, default=None, help=ONLY_STUDY)
    sub.add_argument("--format", choices=("table", "json", "csv"), default="table", help="what to print")
    sub.add_argument("--seed", type=seed_int, default=0, help="seed of the bootstrap and permutation resampling")
    sub.add_argument(
        "--margin",
        type=margin_float,
        default=0.002,
        help="a change inside +-MARGIN is negligible, beyond it matters; 0 < MARGIN < 0.1 (default: 0.002, "
        "20 images in 10,000)",
    )
    sub.add_argument("--explain", action="store_true", help="print the method's long form after the tables")
    sub.add_argument(
        "--effect-of",
        metavar="PARAM",
        default=None,
        help="a grid's: PARAM's effect within each value of every other varied parameter, with simultaneous "
        "intervals and verdicts (does depth help at another learning rate?)",
    )
    sub = add("best", READERS["best"])
    _add_storage(sub)
    sub.add_argument("--study-name", type=study_name, default=None, help=ONLY_STUDY)
    _add_artifacts(sub)
    sub = add("list", READERS["list"])
    _add_storage(sub)
    sub = add("export", READERS["export"])
    _add_storage(sub)
    sub.add_argument("--study-name", type=study_name, default=None, help=ONLY_STUDY)
    sub.add_argument("--out", required=True, help="CSV file to write; - writes to standard output")
    bench_cli.add_parser(commands, ANALYSES["bench"], HelpFormatter)
    sub = add("clean", TOOLS["clean"])
    _add_storage(sub)
    _add_artifacts(sub)
    return parser


def _add_artifacts(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--artifacts", default=None, help="artifact folder (default: beside the SQLite file, else ./artifacts)"
    )


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"the studies' storage (default: {DEFAULT_STORAGE}): sqlite:///FILE.db, journal:FILE.log "
        "(Optuna's Journal storage) or postgresql://USER@HOST/DB",
    )


def _add_study_args(parser: argparse.ArgumentParser, kind: str) -> None:
    info = KIND_TABLE[kind]
    default_trials = "all points" if info.default_trials is None else str(info.default_trials)
    default_pruner = info.default_pruner
    group = parser.add_argument_group("study")
    group.add_argument(
        "--trials",
        type=positive_int,
        default=None,
        help=f"the study's total of finished trials; a re-run runs only the rest (default: {default_trials})",
    )
    group.add_argument(
        "--timeout", type=float, default=None, help="stop starting trials after this many seconds (default: no limit)"
    )
    group.add_argument("--study-name", type=study_name, default=None, help=f"study name (default: mnist-{kind})")
    _add_storage(group)
    group.add_argument(
        "--seed", type=seed_int, default=1, help=f"seed of the sampler, the grid's order and training, 0..{MAX_SEED}"
    )
    group.add_argument(
        "--seeds",
        metavar="K",
        type=positive_int,
        default=1,
        help=f"train each point under K seeds (--seed, --seed + 1, ...; K at most {MAX_SEEDS}); "
        "its value is their mean validation accuracy",
    )
    group.add_argument(
        "--max-epochs",
        metavar="N",
        type=positive_int,
        default=None,
        help="cap the epochs: grid values above N become N, random and TPE sample 1..N (unset: up to 25)",
    )
    group.add_argument("--pruner", choices=PRUNERS, default=None, help=f"pruner (default: {default_pruner})")
    group.add_argument(
        "--regularization",
        action="store_true",
        help="add dropout, weight decay (L2) and L1 to the space (each 0 at the baseline); default off",
    )
    group.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="local worker processes on the study (default: "
        + ("one per core on the CPU, while the study has networks for them)" if info.has_points else "1)"),
    )
    group.add_argument(
        "--heartbeat",
        type=int_in(MAX_HEARTBEAT),
        default=60,
        help=f"seconds between heartbeats, 1..{MAX_HEARTBEAT}; a trial silent for twice that is failed and re-run",
    )
    group.add_argument(
        "--compile",
        choices=COMPILE,
        default="auto",
        help="compile the CPU's Adadelta update once per worker (5-35 s; a g++ is needed): auto does when "
        "a worker's share of the study repays it (a grid, a full oat), off never",
    )
    _add_artifacts(group)
    if not info.has_points:
        group.add_argument(
            "--objectives",
            type=objective_names,
            default=("accuracy",),
            metavar="accuracy[,parameters][,seconds]",
            help="what the study optimizes: the validation accuracy (maximized), and with parameters or seconds "
            "(minimized) a multi-objective study whose result is a Pareto front; it does not prune "
            "(default: accuracy)",
        )
        group.add_argument(
            "--space",
            choices=("full", "grid"),
            default="full",
            help="full: the distributions; grid: each parameter over its grid values (as bench replay)",
        )
    if kind == "grid":
        group.add_argument(
            "--vary",
            metavar="P1,P2,...",
            type=lambda text: tuple(name.strip() for name in text.split(",") if name.strip()),
            default=(),
            help="a factorial: only these parameters over their grid values, the others at the oat baseline "
            "(1 x 128 relu, nll, learning rate 1.0, 14 epochs, batch 64); default: every parameter (the full grid)",
        )
    if info.has_points:
        group.add_argument(
            "--separate-runs",
            action="store_true",
            help="train every point alone (by default the points of one shape and batch size, all activations, "
            "losses, learning rates, epochs and seeds, share one grouped run: the same numbers in less time)",
        )


def spec_from_args(args: argparse.Namespace) -> StudySpec:
    """The spec of a study command: every option named as a ``StudySpec`` field, and the three that are not."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(StudySpec) if hasattr(args, f.name)}
    return StudySpec(
        **given,
        kind=args.command,
        download=not args.no_download,
        share_runs=not getattr(args, "separate_runs", False),
        grid_space=getattr(args, "space", "full") == "grid",
    )


def dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    from search import app

    if args.command in STUDIES:
        code = app.run_study(spec_from_args(args), argv)
        # Its last lines are out: a Ctrl-C now would only cut the interpreter's exit into a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return code
    if args.command == "dashboard":
        app.serve_dashboard(args.storage, args.host, args.port, args.artifacts, args.allow_writes, args.allow_host)
        return 0
    if args.command == "report":
        return app.report(args.storage, args.study_name, args.out)
    if args.command == "effects":
        return app.effects(
            args.storage, args.study_name, args.format, args.seed, args.margin, args.explain, args.effect_of
        )
    if args.command == "best":
        return app.best(args.storage, args.study_name, args.artifacts)
    if args.command == "bench":
        return bench_cli.run(args)
    if args.command == "list":
        return app.list_studies(args.storage)
    if args.command == "clean":
        from search.clean import clean

        return clean(args.storage, args.artifacts)
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
            url = getattr(args, "storage", DEFAULT_STORAGE)
            fail(failure_message(url, e, close_trials=False) or f"storage error: {type(e).__name__}", 1)

    raise SystemExit(run_cli(guarded))


if __name__ == "__main__":
    main()
