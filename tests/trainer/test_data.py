from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import N_TEST, N_TRAIN, synthetic_digits, write_mnist
from trainer import DataError, load_mnist, resolve_data_dir, split
from trainer.data import MEAN, STD


def test_loads_through_torchvision_as_normalized_flat_tensors(mnist_dir: Path) -> None:
    data = load_mnist(mnist_dir, "cpu", download=False)
    assert data.train_x.shape == (N_TRAIN, 784) and data.test_x.shape == (N_TEST, 784)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    raw = torch.from_numpy(synthetic_digits(N_TRAIN, seed=0)[0]).reshape(N_TRAIN, -1).float() / 255
    torch.testing.assert_close(data.train_x, (raw - MEAN) / STD)
    assert set(data.train_y.tolist()) == set(range(10))


def test_is_loaded_once_per_process(mnist_dir: Path) -> None:
    assert load_mnist(mnist_dir, "cpu", download=False) is load_mnist(str(mnist_dir), "cpu", download=False)


def test_flat_gzipped_folder_is_accepted(tmp_path: Path) -> None:
    write_mnist(tmp_path / "flat", gz=True)
    data = load_mnist(tmp_path / "flat", "cpu", download=False)
    assert data.train_x.shape == (N_TRAIN, 784)


def test_data_dir_falls_back_to_environment_then_data(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_data_dir("given") == Path("given")
    monkeypatch.setenv("MNIST_DATA_DIR", "/from/env")
    assert resolve_data_dir(None) == Path("/from/env")
    monkeypatch.delenv("MNIST_DATA_DIR")
    assert resolve_data_dir(None) == Path("data")


def test_default_split_holds_out_the_last_training_images(mnist_dir: Path) -> None:
    data = load_mnist(mnist_dir, "cpu", download=False)
    s = split(data, validation=100)
    assert len(s.train_y) == N_TRAIN - 100 and len(s.val_y) == 100 and len(s.test_y) == N_TEST
    assert torch.equal(s.val_x, data.train_x[-100:])


def test_validation_zero_trains_on_all_and_validates_on_test(mnist_dir: Path) -> None:
    s = split(load_mnist(mnist_dir, "cpu", download=False), validation=0)
    assert len(s.train_y) == N_TRAIN
    assert torch.equal(s.val_x, s.test_x)


def test_limits_take_the_first_images(mnist_dir: Path) -> None:
    data = load_mnist(mnist_dir, "cpu", download=False)
    s = split(data, validation=100, limit_train=50, limit_test=30)
    assert torch.equal(s.train_x, data.train_x[:50]) and torch.equal(s.test_x, data.test_x[:30])


@pytest.mark.parametrize("validation", [-1, N_TRAIN])
def test_impossible_validation_size_is_refused(mnist_dir: Path, validation: int) -> None:
    with pytest.raises(ValueError, match=f"validation={validation}"):
        split(load_mnist(mnist_dir, "cpu", download=False), validation=validation)


def test_missing_files_say_where_they_go(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path / "nothing", "cpu", download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "--data-dir" in message and "MNIST_DATA_DIR" in message
    assert "\n" not in message


def test_truncated_file_is_reported(tmp_path: Path, mnist_dir: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(mnist_dir, root)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_mnist(root, "cpu", download=False)


def test_corrupt_gzip_is_reported(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path / "flat", gz=True)
    gz = folder / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:20])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_mnist(folder, "cpu", download=False)


def test_a_failed_download_is_one_line_and_leaves_no_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(root: str, train: bool, download: bool) -> None:
        Path(root, "MNIST", "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does before it downloads
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://...\n<urlopen error>")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path / "data", "cpu", download=True)
    assert len(str(info.value).splitlines()) == 1 and "Error downloading" in str(info.value)
    assert list(tmp_path.iterdir()) == []
