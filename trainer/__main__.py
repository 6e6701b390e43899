"""``python -m trainer``: train one configuration and print its history."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from trainer.cli import Parser, add_config_args, add_data_args, config_from_args, run_cli
from trainer.data import load_mnist, split
from trainer.loop import EpochRecord, resolve_device, train


def main(argv: Sequence[str] | None = None) -> None:
    parser = Parser(prog="python -m trainer", description="Train one fully connected network on MNIST.")
    add_config_args(parser)
    add_data_args(parser)
    parser.add_argument("--json", action="store_true", help="print the whole result as one JSON object on stdout")
    args = parser.parse_args(argv)
    run_cli(lambda: _run(args))


def _run(args: object) -> None:
    config = config_from_args(args)  # type: ignore[arg-type]
    device = resolve_device(config.device)
    data = load_mnist(args.data_dir, device, download=not args.no_download)  # type: ignore[attr-defined]
    splits = split(data, args.validation, args.limit_train, args.limit_test)  # type: ignore[attr-defined]
    print(
        f"training on {device}: {len(splits.train_y)} train, {len(splits.val_y)} validation, "
        f"{len(splits.test_y)} test images",
        file=sys.stderr,
    )
    result = train(config, splits, on_epoch=lambda r: _print_epoch(r, config.epochs))
    if result.diverged:
        print(f"diverged: the loss became NaN or infinite in epoch {len(result.history) + 1}", file=sys.stderr)
    if args.json:  # type: ignore[attr-defined]
        json.dump(result.to_dict(), sys.stdout)
        print()
    elif result.history:
        print(f"test accuracy {result.test_accuracy:.4f} in {result.seconds:.1f}s")


def _print_epoch(r: EpochRecord, epochs: int) -> None:
    print(
        f"epoch {r.epoch:2d}/{epochs}  train loss {r.train_loss:.4f} acc {r.train_accuracy:.4f}  "
        f"val loss {r.val_loss:.4f} acc {r.val_accuracy:.4f}  test loss {r.test_loss:.4f} "
        f"acc {r.test_accuracy:.4f}  {r.seconds:.2f}s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
