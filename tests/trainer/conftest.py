from __future__ import annotations

from pathlib import Path

import pytest

from trainer import Splits, load_mnist, split


@pytest.fixture(scope="module")
def splits(mnist_dir: Path) -> Splits:
    """The synthetic digits, 100 of the training images held out for validation."""
    return split(load_mnist(mnist_dir, "cpu", download=False), validation=100)
