"""Where a group's run saves its state after every epoch, so that an interrupted run resumes exactly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


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
        partial = self.path.with_name(self.path.name + ".partial")
        torch.save(state, partial)
        os.replace(partial, self.path)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none."""
        if not self.path.exists():
            return None
        return torch.load(self.path, weights_only=True)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
