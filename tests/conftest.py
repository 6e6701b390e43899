"""Shared fixtures: tiny learnable MNIST-format files, written fresh, never downloaded."""

from __future__ import annotations

import gzip
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from trainer.data import FILES

REPO = Path(__file__).resolve().parents[1]
REAL_MNIST = Path(os.environ.get("REAL_MNIST_DIR", REPO.parent / "shared" / "mnist"))
N_TRAIN, N_TEST = 600, 200


# Tests stop dashboards and studies with SIGINT, as a Ctrl-C would. Started in the background of a
# non-interactive shell (`.ci/run &`), this process and so its children inherit SIGINT ignored,
# and a child would then never stop: a handler here is reset to the default in every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each class lights its own 7x7 block, shifted a little, over noise; 5% of labels are wrong.

    Learnable to about 90% in a few epochs, and not trivially to 100%, so curves differ.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 100, size=(n, 28, 28)).astype(np.uint8)
    shifts = rng.integers(-1, 2, size=(n, 2))
    for i, label in enumerate(labels):
        row, col = 3 + (label // 5) * 12 + shifts[i, 0], 3 + (label % 5) * 4 + shifts[i, 1]
        images[i, row : row + 7, col : col + 7] = 230
    wrong = rng.random(n) < 0.05
    labels[wrong] = rng.integers(0, 10, size=int(wrong.sum()))
    return images, labels


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, gz: bool = False, n_train: int = N_TRAIN, n_test: int = N_TEST) -> Path:
    """Write the four IDX files into ``folder`` (gzipped when ``gz``) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    train, test = synthetic_digits(n_train, seed=0), synthetic_digits(n_test, seed=1)
    arrays = (train[0], train[1], test[0], test[1])
    for name, array in zip(FILES, arrays, strict=True):
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root in torchvision's layout (``MNIST/raw/``) with 600 train and 200 test images."""
    root = tmp_path_factory.mktemp("mnist")
    write_mnist(root / "MNIST" / "raw")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staged copies of flat data folders go to a temporary cache, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
