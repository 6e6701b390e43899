"""``python -m trainer``: train one configuration and print its history."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trainer.cli import Parser, add_config_args, add_data_args, config_from_args, positive_int, run_cli

if TYPE_CHECKING:  # torch and the modules that need it load once the arguments are read: --help starts at once
    from trainer.config import TrainConfig
    from trainer.data import Splits
    from trainer.loop import EpochRecord, RunResult


def main(argv: Sequence[str] | None = None) -> None:
    parser = Parser(prog="python -m trainer", description="Train one fully connected network on MNIST.")
    add_config_args(parser)
    add_data_args(parser)
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        help="train under the seeds SEED..SEED+K-1 as one group and print the mean and spread",
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as one JSON object on stdout")
    args = parser.parse_args(argv)
    run_cli(lambda: _run(args))


def _run(args: object) -> None:
    import torch

    from trainer.data import load_mnist, split
    from trainer.loop import resolve_device, train
    from trainer.seeds import seed_configs

    config = config_from_args(args)  # type: ignore[arg-type]
    torch.set_num_threads(args.threads)  # type: ignore[attr-defined]
    device = resolve_device(config.device)
    data = load_mnist(args.data_dir, device, download=not args.no_download)  # type: ignore[attr-defined]
    splits = split(data, args.validation, args.limit_train, args.limit_test)  # type: ignore[attr-defined]
    print(
        f"training on {device}: {len(splits.train_y)} train, {len(splits.val_y)} validation, "
        f"{len(splits.test_y)} test images",
        file=sys.stderr,
    )
    if args.seeds > 1:  # type: ignore[attr-defined]
        _run_seeds(seed_configs(config, args.seeds), splits, args.json)  # type: ignore[attr-defined]
        return
    result = train(config, splits, on_epoch=lambda r: _print_epoch(r, config.epochs))
    _print_diverged(result)
    if args.json:  # type: ignore[attr-defined]
        json.dump(result.to_dict(), sys.stdout)
        print()
    elif result.history:
        print(f"test accuracy {result.test_accuracy:.4f} in {result.seconds:.1f}s")


def _run_seeds(configs: list[TrainConfig], splits: Splits, as_json: bool) -> None:
    """Train the seeds as one group; print each seed's epochs, then the spread of the accuracies."""
    from trainer.loop import train_together
    from trainer.seeds import Spread, seed_summary

    callbacks = [lambda r, c=c: _print_epoch(r, c.epochs, f"seed {c.seed}  ") for c in configs]
    results = train_together(configs, splits, callbacks)
    for result in results:
        _print_diverged(result, f"seed {result.config.seed}: ")
    summary = seed_summary(results)
    if as_json:
        spreads = {k: v.to_dict() if isinstance(v, Spread) else v for k, v in summary.items()}
        json.dump({**spreads, "runs": [r.to_dict() for r in results]}, sys.stdout)
        print()
        return
    seconds = max(r.seconds for r in results)
    print(f"validation accuracy {summary['val_accuracy']}")
    print(f"test accuracy {summary['test_accuracy']} in {seconds:.1f}s")


def _print_diverged(result: RunResult, prefix: str = "") -> None:
    if result.diverged:
        epoch = len(result.history) + 1
        print(f"{prefix}diverged: the loss became NaN or infinite in epoch {epoch}", file=sys.stderr)


def _print_epoch(r: EpochRecord, epochs: int, prefix: str = "") -> None:
    print(
        f"{prefix}epoch {r.epoch:2d}/{epochs}  train loss {r.train_loss:.4f} acc {r.train_accuracy:.4f}  "
        f"val loss {r.val_loss:.4f} acc {r.val_accuracy:.4f}  test loss {r.test_loss:.4f} "
        f"acc {r.test_accuracy:.4f}  {r.seconds:.2f}s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
