"""The search's own cost per trial (claims, sampler, storage writes, notes, artifacts, figures).

Usage:
    python benchmarks/search_overhead.py --data-dir ../shared/mnist [--trials 20]

Runs a random study of short trials on SQLite and, when a server answers, on PostgreSQL. The
overhead is the run's wall time less the trials' own training time, spread over the trials, and
is printed also as a fraction of a 5-second trial.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

import optuna

from search import app
from search.spec import StudySpec
from trainer import load_mnist

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REFERENCE_TRIAL = 5.0


def postgres_url() -> str | None:
    try:
        import psycopg

        name = f"mnist_hpo_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:5432/{name}"
    except Exception:  # noqa: BLE001 - no server: measure SQLite only
        return None


def measure(storage: str, args: argparse.Namespace) -> tuple[float, float, int]:
    spec = StudySpec(
        kind="random",
        trials=args.trials,
        storage=storage,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        limit_test=1000,
        validation=1000,
        device="cpu",
        pruner="none",
    )
    started = time.perf_counter()
    if code := app.run_study(spec, []):
        raise SystemExit(code)  # interrupted (Ctrl-C) or failed: stop the benchmark
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=spec.name, storage=storage)
    training = sum(t.user_attrs.get("train_seconds", 0.0) for t in study.trials)
    return wall, training, len(study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR, else ./data)")
    parser.add_argument("--trials", type=int, default=20, help="trials per storage")
    parser.add_argument("--limit-train", type=int, default=1000, help="training images per trial (short trials)")
    args = parser.parse_args()
    load_mnist(args.data_dir, "cpu")  # once per process, as a worker does: not part of any trial
    storages = {"sqlite": f"sqlite:///{tempfile.mkdtemp()}/studies.db"}
    pg = postgres_url()
    if pg:
        storages["postgresql"] = pg
    print("| storage | trials | wall (s) | training (s) | overhead per trial (s) | share of a 5 s trial |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, url in storages.items():
        wall, training, n = measure(url, args)
        per_trial = (wall - training) / n
        print(f"| {name} | {n} | {wall:.1f} | {training:.1f} | {per_trial:.3f} | {per_trial / REFERENCE_TRIAL:.1%} |")


if __name__ == "__main__":
    main()
