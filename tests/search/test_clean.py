"""``python -m search clean``: checkpoints of deleted studies go, everything else stays."""

from __future__ import annotations

from pathlib import Path

import optuna

from tests.search.conftest import run_search
from tests.search.test_cli import one_line_error
from trainer import TrainConfig
from trainer.checkpoint import CheckpointFolder


def checkpoint(folder: Path, study: str, identity: str = "one") -> Path:
    path = CheckpointFolder(folder, study, identity).path([TrainConfig()])
    path.write_bytes(b"saved run")
    return path


def test_clean_removes_the_checkpoints_of_deleted_studies_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    for name in ("kept", "gone", "gone-too"):
        optuna.create_study(study_name=name, storage=url)
    folder = tmp_path / "studies-artifacts"
    folder.mkdir()
    kept = [checkpoint(folder, "kept"), checkpoint(folder, "kept", "other data")]
    gone = [checkpoint(folder, "gone"), checkpoint(folder, "gone-too")]
    partial = folder / f".{gone[0].name}.a1b2c3.partial"  # a save a kill cut short
    partial.write_bytes(b"half")
    model = folder / "2c8a7c8e-7b0e-4d6b-9a51-0f5c1c7e2d10"  # a trial's model file
    model.write_bytes(b"weights")
    optuna.delete_study(study_name="gone", storage=url)
    optuna.delete_study(study_name="gone-too", storage=url)

    proc = run_search("clean", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = f"removed 3 checkpoint file(s) of deleted studies from {folder}; kept 2 of studies there"
    assert proc.stderr.strip() == said
    assert sorted(folder.iterdir()) == sorted([*kept, model])


def test_clean_of_a_missing_storage_removes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "typo-artifacts"
    folder.mkdir()
    saved = checkpoint(folder, "mnist-grid")
    one_line_error(run_search("clean", "--storage", f"sqlite:///{tmp_path / 'typo.db'}", cwd=tmp_path), "typo.db")
    assert list(folder.iterdir()) == [saved] and not (tmp_path / "typo.db").exists()
