"""Command-line pieces shared by ``python -m trainer`` and ``python -m search``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from trainer.config import ACTIVATIONS, LOSSES, MAX_THREADS, OPTIMIZERS, TrainConfig
from trainer.errors import DataError, UsageError

T = TypeVar("T")
# What every training command's help says of networks trained together (trainer.stack).
GROUP_NOTE = (
    "Networks of one shape train together as one group. On the CPU at one torch thread per process "
    "(OMP_NUM_THREADS=1) each is bit for bit its run alone; with more threads, or on a GPU, it equals "
    "its run alone within rounding only."
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` only where the help does not state its default already, and not for None or False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unstated = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if "(default" in text or unstated:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and whose help states every default once."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(message: str, code: int = 2) -> NoReturn:
    """End the program with one line on stderr and a nonzero exit."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def run_cli(main: Callable[[], T]) -> T:
    """Run ``main``, turning user errors into one line and Ctrl-C into exit 130.

    User errors are the project's own: ``DataError`` (exit 1) and ``UsageError`` (exit 2).
    Any other exception, a plain ``ValueError`` included, is a bug and keeps its traceback.
    """
    try:
        return main()
    except DataError as e:
        fail(str(e), 1)
    except UsageError as e:
        fail(str(e), 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not raise again
        raise SystemExit(1) from None


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def int_in(high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``1..high``."""

    def bounded(text: str) -> int:
        value = _int(text)
        if not 1 <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in 1..{high}, got {text!r}")
        return value

    return bounded


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Where the data comes from and how it is split; also the device."""
    group = parser.add_argument_group("data and device", GROUP_NOTE)
    group.add_argument(
        "--data-dir", default=None, help="folder with the four MNIST files (default: $MNIST_DATA_DIR, else ./data)"
    )
    group.add_argument(
        "--validation",
        type=non_negative_int,
        default=10_000,
        help="last N training images held out for validation; 0 trains on all and validates on test",
    )
    group.add_argument(
        "--limit-train", type=positive_int, default=None, help="train on the first N images only (default: all)"
    )
    group.add_argument(
        "--limit-test", type=positive_int, default=None, help="test on the first N images only (default: all)"
    )
    group.add_argument("--no-download", action="store_true", help="never try to download MNIST")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps; auto takes CUDA when present")
    group.add_argument(
        "--threads",
        type=int_in(MAX_THREADS),
        default=1,
        help=f"CPU threads of each training process (a study's every worker), 1..{MAX_THREADS}; more than "
        "the cores free slows a shared machine down many times",
    )


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field, defaulting to the baseline."""
    base = TrainConfig()
    group = parser.add_argument_group("network and training")
    group.add_argument("--hidden-layers", type=int, default=base.hidden_layers, help="hidden layers, 0..10")
    group.add_argument("--hidden-units", type=int, default=base.hidden_units, help="units per hidden layer, 1..4096")
    group.add_argument("--activation", choices=ACTIVATIONS, default=base.activation, help="hidden activation")
    group.add_argument("--loss", choices=LOSSES, default=base.loss, help="loss function")
    group.add_argument("--lr", type=float, default=base.learning_rate, help="learning rate")
    group.add_argument("--epochs", type=int, default=base.epochs, help="epochs, 1..25")
    group.add_argument("--batch-size", type=int, default=base.batch_size, help="training batch size")
    group.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=base.optimizer, help="optimizer (sgd uses momentum 0.9)"
    )
    group.add_argument("--dropout", type=float, default=base.dropout, help="dropout after each hidden activation")
    group.add_argument(
        "--weight-decay", type=float, default=base.weight_decay, help="L2 penalty (optimizer weight decay)"
    )
    group.add_argument("--l1", type=float, default=base.l1, help="L1 penalty on the weights, added to the loss")
    group.add_argument("--seed", type=int, default=base.seed, help="random seed")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        hidden_layers=args.hidden_layers,
        hidden_units=args.hidden_units,
        activation=args.activation,
        loss=args.loss,
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        dropout=args.dropout,
        weight_decay=args.weight_decay,
        l1=args.l1,
        seed=args.seed,
        device=args.device,
    )
