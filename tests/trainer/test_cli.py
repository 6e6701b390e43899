from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REAL_MNIST, REPO
from trainer import TrainConfig
from trainer.cli import run_cli


def run_trainer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_json_result_and_a_line_per_epoch(mnist_dir: Path) -> None:
    proc = run_trainer(
        "--data-dir",
        str(mnist_dir),
        "--validation",
        "100",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--json",
        "--no-download",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["config"]["epochs"] == 2 and len(result["history"]) == 2
    assert result["test_accuracy"] == result["history"][-1]["test_accuracy"]
    assert result["diverged"] is False and result["seconds"] > 0
    assert proc.stderr.count("epoch ") == 2


def test_data_dir_from_environment(mnist_dir: Path) -> None:
    proc = run_trainer("--validation", "100", "--epochs", "1", "--no-download", env={"MNIST_DATA_DIR": str(mnist_dir)})
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout


def test_help_imports_no_torch() -> None:
    """``--help`` answers at once: torch (seconds to import) loads only once there is a run to train."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trainer", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m trainer"), proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "trainer.cli" in imported and not imported & {"torch", "numpy", "trainer.loop", "trainer.data"}


def test_help_states_defaults() -> None:
    proc = run_trainer("--help")
    assert proc.returncode == 0
    for flag in (
        "--hidden-layers",
        "--hidden-units",
        "--activation",
        "--loss",
        "--lr",
        "--epochs",
        "--batch-size",
        "--optimizer",
        "--dropout",
        "--weight-decay",
        "--l1",
        "--seed",
        "--device",
        "--data-dir",
        "--validation",
        "--limit-train",
        "--limit-test",
        "--json",
    ):
        assert flag in proc.stdout
    assert "default: 14" in proc.stdout and "default: adadelta" in proc.stdout


@pytest.mark.parametrize(
    ("args", "quoted"),
    [
        (["--activation", "swish"], "swish"),
        (["--loss", "hinge"], "hinge"),
        (["--optimizer", "rmsprop"], "rmsprop"),
        (["--batch-size", "0"], "batch_size=0"),
        (["--lr", "-1"], "learning_rate=-1.0"),
        (["--hidden-layers", "-1"], "hidden_layers=-1"),
        (["--epochs", "0"], "epochs=0"),
        (["--epochs", "many"], "many"),
        (["--validation", "-5"], "-5"),
        (["--device", "tpu"], "tpu"),
        (["--threads", "100000"], "1..1024, got '100000'"),
        (["--threads", "0"], "1..1024, got '0'"),
    ],
)
def test_bad_input_is_one_line_without_traceback(mnist_dir: Path, args: list[str], quoted: str) -> None:
    proc = run_trainer("--data-dir", str(mnist_dir), "--no-download", *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert quoted in proc.stderr


def test_missing_data_is_one_line_saying_where_files_go(tmp_path: Path) -> None:
    proc = run_trainer("--data-dir", str(tmp_path / "empty"), "--no-download")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "train-images-idx3-ubyte" in proc.stderr and "--data-dir" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not found at {REAL_MNIST}")
def test_baseline_on_real_mnist_reaches_its_accuracy() -> None:
    """The acceptance run: the 14-epoch baseline on all 60,000 images."""
    proc = run_trainer("--data-dir", str(REAL_MNIST), "--validation", "0", "--device", "cpu", "--json", "--no-download")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["history"]) == 14
    assert result["test_accuracy"] >= 0.978


def test_seeds_train_as_one_group_and_print_the_spread(mnist_dir: Path) -> None:
    common = ["--data-dir", str(mnist_dir), "--validation", "100", "--epochs", "2", "--device", "cpu", "--no-download"]
    proc = run_trainer(*common, "--seeds", "3", "--seed", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["seeds"] == [4, 5, 6] and result["diverged"] == []
    assert [run["config"]["seed"] for run in result["runs"]] == [4, 5, 6]
    assert len({run["history"][-1]["val_loss"] for run in result["runs"]}) == 3  # three seeds, three draws
    for name in ("val_accuracy", "test_accuracy"):
        values = [run[name] for run in result["runs"]]
        spread = result[name]
        assert spread["mean"] == pytest.approx(np.mean(values))
        assert spread["std"] == pytest.approx(np.std(values, ddof=1))
        assert (spread["low"], spread["high"], spread["n"]) == (min(values), max(values), 3)
    assert proc.stderr.count("seed 5  epoch ") == 2
    text = run_trainer(*common, "--seeds", "3", "--seed", "4")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("validation accuracy") and lines[1].startswith("test accuracy")
    assert f"{result['val_accuracy']['mean']:.4f} +- " in lines[0] and "3 seeds" in lines[0]


def test_zero_seeds_is_one_line(mnist_dir: Path) -> None:
    proc = run_trainer("--data-dir", str(mnist_dir), "--no-download", "--seeds", "0")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "'0'" in proc.stderr


def test_run_cli_turns_the_projects_errors_into_one_line_and_lets_bugs_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def bad_input() -> None:
        TrainConfig(epochs=0)

    with pytest.raises(SystemExit) as exit_info:
        run_cli(bad_input)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: epochs must be 1..25, but got epochs=0.\n"

    def bug() -> None:
        raise ValueError("an internal invariant broke")

    with pytest.raises(ValueError, match="an internal invariant broke"):
        run_cli(bug)


def test_help_says_a_group_equals_its_runs_alone_within_rounding_beyond_one_thread() -> None:
    proc = run_trainer("--help")
    text = " ".join(proc.stdout.split())
    assert "bit for bit its run alone" in text and "with more threads, or on a GPU" in text
    assert "within rounding only" in text


def test_help_names_threads_and_states_each_default_once() -> None:
    out = run_trainer("--help").stdout
    assert "--threads" in out and "(default: 1)" in out
    assert "(default: None)" not in out and "else ./data)" in out and "./data) (default" not in out
