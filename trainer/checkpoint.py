"""Where a group's run saves its state after every epoch, so that an interrupted run resumes exactly."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from trainer.config import TrainConfig


class Checkpoint:
    """A file holding a run's state at the end of its last finished epoch.

    ``trainer.loop.train_together(..., checkpoint=Checkpoint(path))`` saves there after
    every epoch (the weights, the optimizer's state, each seed's batch-order generator and
    each member's dropout generator, the epoch, the histories so far and the models of the
    configurations that have left), resumes from it when it exists, and removes it when the
    run ends. The resumed run's histories and models are bit for bit those of a run never
    interrupted. The file is written whole or not at all (a temporary file, then a rename).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def save(self, state: dict[str, Any]) -> None:
        # A temporary file of this process alone: a worker killed mid-write leaves no half-written
        # checkpoint, and two processes saving the same run never write into one temporary file.
        fd, partial = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
            os.replace(partial, self.path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none."""
        if not self.path.exists():
            return None
        return torch.load(self.path, weights_only=True)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class CheckpointFolder:
    """The checkpoints of one study's runs in ``folder``, each named from the configurations it trains.

    A run's file is ``checkpoint-<study>-<run key hash>-<configurations hash>.pt``. A rerun
    may re-form a smaller run than the one interrupted (its finished configurations were
    stored and are not asked again): ``find`` resumes the checkpoint of any run that holds
    all of the asked configurations, and returns that run's full list to train.
    """

    def __init__(self, folder: str | os.PathLike[str], study: str) -> None:
        self.folder = Path(folder)
        safe = re.sub(r"[^\w.]", "_", study)[:40]  # no "-": a study's files never match another's prefix
        self.prefix = f"checkpoint-{safe}-{_digest([study])[:8]}"

    def path(self, configs: Sequence[TrainConfig]) -> Path:
        """Where a run of ``configs`` (in any order) keeps its checkpoint."""
        return self.folder / f"{self._run_prefix(configs)}-{_digest(_dicts(configs))[:16]}.pt"

    def find(self, configs: Sequence[TrainConfig]) -> tuple[Checkpoint, list[TrainConfig]]:
        """The checkpoint to train ``configs`` with, and the configurations that run trains.

        A saved run that holds every one of ``configs`` is resumed with all of its own
        configurations, in its order; else a new checkpoint for ``configs`` alone. A file
        that cannot be read or does not hold what its name says is removed with one line
        on stderr.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        asked = set(configs)
        for path in sorted(self.folder.glob(f"{self._run_prefix(configs)}-*.pt")):
            saved = _saved_configs(path)
            if saved == []:  # removed meanwhile: its run ended in another worker
                continue
            if saved is None or path != self.path(saved):
                print(f"ignoring the unreadable or mismatched checkpoint {path} (removed)", file=sys.stderr)
                path.unlink(missing_ok=True)
            elif asked <= set(saved):
                return Checkpoint(path), saved
        return Checkpoint(self.path(configs)), list(configs)

    def clear(self) -> None:
        """Remove every checkpoint of the study (once nothing is left to resume them)."""
        # With the temporary files of workers killed while they saved (``Checkpoint.save``).
        for path in [*self.folder.glob(f"{self.prefix}-*.pt"), *self.folder.glob(f".{self.prefix}-*.partial")]:
            path.unlink(missing_ok=True)

    def _run_prefix(self, configs: Sequence[TrainConfig]) -> str:
        from trainer.loop import group_key  # the loop imports this module

        keys = {json.dumps(group_key(c).to_dict(), sort_keys=True) for c in configs}
        return f"{self.prefix}-{_digest(sorted(keys))[:12]}"


_KEYS = {"configs", "epoch", "param", "optimizer", "orders", "masks", "histories", "left"}  # trainer.loop._snapshot


def _saved_configs(path: Path) -> list[TrainConfig] | None:
    """The configurations a checkpoint file was saved for: none when it is gone, None when it is unreadable."""
    try:
        state = Checkpoint(path).load()
        if state is None:
            return []
        if not state.keys() >= _KEYS or not state["configs"]:
            return None
        return [TrainConfig(**c) for c in state["configs"]]
    except FileNotFoundError:
        return []
    except Exception:  # noqa: BLE001 - any damage (truncated, foreign, older format) means: do not resume
        return None


def _dicts(configs: Sequence[TrainConfig]) -> list[str]:
    return sorted(json.dumps(c.to_dict(), sort_keys=True) for c in configs)


def _digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()
