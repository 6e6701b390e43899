"""MNIST as normalized tensors held on the device, loaded once per process."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.errors import DataError, UsageError

MEAN, STD = 0.1307, 0.3081
IMAGE_SIDE = 28
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# (magic number, header bytes, bytes per item) of the IDX files torchvision reads.
_IMAGES, _LABELS = (2051, 16, IMAGE_SIDE * IMAGE_SIDE), (2049, 8, 1)


@dataclass(frozen=True)
class MNIST:
    """All of MNIST: flattened images normalized with MNIST's mean and std, int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@dataclass(frozen=True)
class Splits:
    """The tensors one run trains, validates and tests on (views of an ``MNIST``)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir`` if given, else ``$MNIST_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get("MNIST_DATA_DIR") or "data").expanduser()


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> MNIST:
    """Load MNIST through torchvision once per process and device.

    ``data_dir`` may hold the four IDX files (gzipped or not) directly, or in
    torchvision's layout ``MNIST/raw/``. Raises ``DataError`` when they are missing
    (and cannot be downloaded) or corrupt.
    """
    root = resolve_data_dir(data_dir).resolve()
    return _load_cached(root, str(torch.device(device)), download)


def split(
    data: MNIST, validation: int = 10_000, limit_train: int | None = None, limit_test: int | None = None
) -> Splits:
    """Hold out the last ``validation`` training images; ``validation=0`` validates on the test set.

    ``limit_train`` and ``limit_test`` keep only the first N training and test images.
    """
    total = len(data.train_y)
    if validation < 0 or validation >= total:
        raise UsageError(
            f"validation must be 0..{total - 1} (the training set has {total} images), but got validation={validation}."
        )
    for name, limit in (("limit_train", limit_train), ("limit_test", limit_test)):
        if limit is not None and limit < 1:
            raise UsageError(f"{name} must be >= 1, but got {name}={limit}.")
    n_train = min(limit_train or total, total - validation)
    test_x, test_y = data.test_x[:limit_test], data.test_y[:limit_test]
    if validation:
        val_x, val_y = data.train_x[total - validation :], data.train_y[total - validation :]
    else:
        val_x, val_y = test_x, test_y
    return Splits(data.train_x[:n_train], data.train_y[:n_train], val_x, val_y, test_x, test_y)


@functools.lru_cache(maxsize=4)
def _load_cached(root: Path, device: str, download: bool) -> MNIST:
    tv_root = _torchvision_root(root, download)
    train_x, train_y = _read(tv_root, train=True, download=download, shown_root=root)
    test_x, test_y = _read(tv_root, train=False, download=download, shown_root=root)
    return MNIST(_normalize(train_x).to(device), train_y.to(device), _normalize(test_x).to(device), test_y.to(device))


def _normalize(images: torch.Tensor) -> torch.Tensor:
    flat = images.reshape(len(images), -1).to(torch.float32).div_(255)
    return flat.sub_(MEAN).div_(STD)


def _read(tv_root: Path, train: bool, download: bool, shown_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST as TorchvisionMNIST

    raw = tv_root / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    checks = ((f"{prefix}-images-idx3-ubyte", _IMAGES), (f"{prefix}-labels-idx1-ubyte", _LABELS))
    for name, kind in checks:
        if (raw / name).exists():
            _check_idx(raw / name, *kind)
    made = [p for p in (raw, raw.parent, tv_root) if not p.exists()]  # what a failed download leaves behind
    try:
        # torchvision reports downloads on stdout, which belongs to --json output.
        with contextlib.redirect_stdout(sys.stderr):
            dataset = TorchvisionMNIST(str(tv_root), train=train, download=download)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError...
        for name, kind in checks:
            if (raw / name).exists():
                _check_idx(raw / name, *kind)
        for folder in made:  # innermost first; a folder that holds anything stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        first = (str(e).strip().splitlines() or [""])[0].rstrip(":")
        raise DataError(_missing_message(shown_root, f"{type(e).__name__}: {first}")) from e
    images, labels = dataset.data, dataset.targets
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or len(images) != len(labels):
        raise DataError(f"MNIST files in {raw} do not match: {len(images)} images, {len(labels)} labels.")
    return images, labels


def _torchvision_root(root: Path, download: bool) -> Path:
    """The folder torchvision should read: ``root`` itself, or a staged copy of flat files."""
    if all((root / "MNIST" / "raw" / f).exists() for f in FILES):
        return root
    flat = [_find(root, f) or _find(root / "MNIST" / "raw", f) for f in FILES]
    if all(flat):
        return _stage(root, flat)  # type: ignore[arg-type]
    if not download and not all((root / "MNIST" / "raw" / f"{f}.gz").exists() for f in FILES):
        missing = [f for f, p in zip(FILES, flat, strict=True) if p is None]
        raise DataError(_missing_message(root, f"missing {', '.join(missing)}"))
    return root


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _stage(root: Path, files: list[Path]) -> Path:
    """Unpack flat (possibly gzipped, possibly read-only) files into torchvision's layout in a cache."""
    key = hashlib.sha1("|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files).encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-hpo" / key.hexdigest()[:16]
    raw = cache / "MNIST" / "raw"
    if all((raw / f).exists() for f in FILES):
        return cache
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot unpack MNIST into {raw} ({e.strerror}); set XDG_CACHE_HOME to a writable folder"
        ) from e
    for name, source in zip(FILES, files, strict=True):
        partial = raw / f"{name}.{os.getpid()}.partial"  # several workers may unpack at once
        try:
            opener = gzip.open if source.suffix == ".gz" else open
            with opener(source, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as e:
            raise DataError(f"MNIST file {source} is corrupt or truncated ({e}); replace it with a good copy.") from e
        partial.replace(raw / name)
    return cache


def _check_idx(path: Path, magic: int, header: int, item_bytes: int) -> None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(header)
    if len(head) < header or int.from_bytes(head[:4], "big") != magic:
        raise DataError(f"MNIST file {path} is not an IDX file of the expected kind; replace it with a good copy.")
    count = int.from_bytes(head[4:8], "big")
    if size != header + count * item_bytes:
        raise DataError(
            f"MNIST file {path} is truncated or corrupt ({size} bytes, expected {header + count * item_bytes}); "
            "replace it with a good copy."
        )


def _missing_message(root: Path, detail: str) -> str:
    names = ", ".join(f"{f}(.gz)" for f in FILES)
    return (
        f"MNIST not found under {root} ({detail}). Put the four files {names} in that folder "
        "(or in its MNIST/raw/), or point --data-dir or MNIST_DATA_DIR at a folder that holds them."
    )
