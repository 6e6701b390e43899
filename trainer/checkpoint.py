"""Where a group's run saves its state after every epoch, so that an interrupted run resumes exactly."""

from __future__ import annotations

import contextlib
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
from trainer.interrupts import held_interrupts


class CheckpointError(ValueError):
    """A checkpoint that exists could not be put back (``train_together``); the message says which and why."""


class Checkpoint:
    """A file holding a run's state at the end of its last finished epoch.

    ``trainer.loop.train_together(..., checkpoint=Checkpoint(path))`` saves there after
    every epoch (the weights, the optimizer's state, each seed's batch-order generator and
    each member's dropout generator, the epoch, the histories so far and the models of the
    configurations that have left), resumes from it when it exists, and removes it when the
    run ends. The resumed run's histories and models are bit for bit those of a run never
    interrupted. The file is written whole or not at all (a temporary file, then a rename); an
    interrupt that comes while it is written stops the run once it is whole.
    A save that fails (a full disk, a folder gone) is skipped with one line on stderr, the
    first time: the run goes on, and the previous save, if any, stays whole.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._told = False

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (see the class); a Ctrl-C or SIGTERM meanwhile is acted on once the file is whole."""
        with held_interrupts():
            self._write(state)

    def _write(self, state: dict[str, Any]) -> None:
        # A temporary file of this process alone: a worker killed mid-write leaves no half-written
        # checkpoint, and two processes saving the same run never write into one temporary file.
        partial: str | None = None
        try:
            fd, partial = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
            os.replace(partial, self.path)
        except Exception as e:  # noqa: BLE001 - OSError, or torch's RuntimeError for a short write: skip this save
            if partial is not None:
                with contextlib.suppress(OSError):
                    Path(partial).unlink(missing_ok=True)
            if not self._told:
                self._told = True
                print(
                    f"cannot write the checkpoint {self.path} ({_cause(e)}); training goes on without it",
                    file=sys.stderr,
                )
        except BaseException:
            if partial is not None:
                Path(partial).unlink(missing_ok=True)
            raise

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none; ``CheckpointError`` when it cannot be read."""
        try:
            return torch.load(self.path, weights_only=True)
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001 - truncated, foreign, unreadable: not a state to resume
            raise CheckpointError(_cause(e)) from e

    def discard(self, error: BaseException) -> None:
        """Remove a checkpoint that could not be put back, saying so in one line on stderr."""
        print(
            f"cannot resume the checkpoint {self.path} ({_cause(error)}): removed, training from epoch 1",
            file=sys.stderr,
        )
        self.clear()

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def study_prefix(study: str) -> str:
    """How every checkpoint file of the study named ``study`` begins (before ``-<identity hash>-``)."""
    safe = re.sub(r"[^\w.]", "_", study)[:40]  # no "-": a study's files never match another's prefix
    return f"checkpoint-{safe}-{_digest([study])[:8]}"


def checkpoint_study(path: Path) -> str | None:
    """The ``study_prefix`` of a checkpoint file (or of a save's temporary file); None for another file."""
    name = path.name.removeprefix(".")
    parts = name.split("-")
    if parts[0] != "checkpoint" or len(parts) < 6 or not name.endswith((".pt", ".partial")):
        return None
    return "-".join(parts[:3])


class CheckpointFolder:
    """The checkpoints of one study's runs in ``folder``, each named from the configurations it trains.

    A run's file is ``checkpoint-<study>-<identity hash>-<run key hash>-<configurations hash>.pt``.
    ``identity`` names what else must match for a checkpoint to be resumed: the caller's
    storage, the study's own identity there (a study deleted and made again under its name
    is another) and the data; the files of another identity beside them are left alone and
    ignored with one line. A rerun may re-form a smaller run than the one interrupted (its
    finished configurations were stored and are not asked again), or other parts of a group:
    ``runs`` resumes every checkpoint that holds some of the asked configurations.
    """

    def __init__(self, folder: str | os.PathLike[str], study: str, identity: str = "") -> None:
        self.folder = Path(folder)
        self._study = study_prefix(study)
        self.prefix = f"{self._study}-{_digest([identity])[:12]}"
        self._ignored: set[Path] = set()

    def path(self, configs: Sequence[TrainConfig]) -> Path:
        """Where a run of ``configs`` (in any order) keeps its checkpoint."""
        return self.folder / f"{self.prefix}-{self._run_key(configs)}-{_digest(_dicts(configs))[:16]}.pt"

    def find(self, configs: Sequence[TrainConfig]) -> tuple[Checkpoint | None, list[TrainConfig]]:
        """The checkpoint to train ``configs`` with, and the configurations that run trains.

        A saved run that holds every one of ``configs`` is resumed with all of its own
        configurations; otherwise a new checkpoint is started for ``configs`` alone. None
        (train without) when the folder cannot be made, said in one line.
        """
        runs = self.runs(configs)
        return runs[0] if len(runs) == 1 else (Checkpoint(self.path(configs)), list(configs))

    def runs(self, configs: Sequence[TrainConfig]) -> list[tuple[Checkpoint | None, list[TrainConfig]]]:
        """The runs that train ``configs``: each saved run holding some of them, resumed with all its own
        configurations, then a new run of those no saved run holds (``configs`` share one run key).

        A file that cannot be read or does not hold what its name says is removed with one
        line on stderr. When the folder cannot be made, one run without a checkpoint (said in one line).
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(
                f"cannot make the checkpoint folder {self.folder} ({_cause(e)}); training without checkpoints",
                file=sys.stderr,
            )
            return [(None, list(configs))]
        left, runs = set(configs), []
        for path, saved in self._saved(configs):
            if left & set(saved):
                runs.append((Checkpoint(path), saved))
                left -= set(saved)
        rest = [c for c in configs if c in left]
        if rest or not runs:
            runs.append((Checkpoint(self.path(rest)), rest))
        return runs

    def resumes(self, configs: Sequence[TrainConfig]) -> bool:
        """Whether a saved run of this study holds any of ``configs`` (which share one run key)."""
        asked = set(configs)
        return any(asked & set(saved) for _, saved in self._saved(configs, quiet=True))

    def clear(self) -> None:
        """Remove every checkpoint of the study (once nothing is left to resume them)."""
        # With the temporary files of workers killed while they saved (``Checkpoint.save``).
        for path in [*self.folder.glob(f"{self.prefix}-*.pt"), *self.folder.glob(f".{self.prefix}-*.partial")]:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    def _saved(self, configs: Sequence[TrainConfig], quiet: bool = False) -> list[tuple[Path, list[TrainConfig]]]:
        """The readable checkpoints of this study, identity and run key of ``configs``, with their configurations."""
        key, found = self._run_key(configs), []
        for path in sorted(self.folder.glob(f"{self._study}-*-{key}-*.pt")):
            if not path.name.startswith(f"{self.prefix}-"):
                if path not in self._ignored and not quiet:
                    self._ignored.add(path)
                    print(
                        f"ignoring the checkpoint {path}: another storage's or study's (of this name), or other data",
                        file=sys.stderr,
                    )
                continue
            saved = _saved_configs(path)
            if saved == []:  # removed meanwhile: its run ended in another worker
                continue
            if saved is None or path != self.path(saved):
                if not quiet:
                    print(f"ignoring the unreadable or mismatched checkpoint {path} (removed)", file=sys.stderr)
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
                continue
            found.append((path, saved))
        return found

    def _run_key(self, configs: Sequence[TrainConfig]) -> str:
        from trainer.loop import group_key  # the loop imports this module

        keys = {json.dumps(group_key(c).to_dict(), sort_keys=True) for c in configs}
        return _digest(sorted(keys))[:12]


_KEYS = {"configs", "epoch", "param", "optimizer", "orders", "masks", "histories", "left"}  # trainer.loop._snapshot


def _saved_configs(path: Path) -> list[TrainConfig] | None:
    """The configurations a checkpoint file was saved for: none when it is gone, None when it is unusable."""
    try:
        state = torch.load(path, weights_only=True, mmap=True)  # the tensors stay on disk until used
        if not state.keys() >= _KEYS or not state["configs"]:
            return None
        configs = [TrainConfig(**c) for c in state["configs"]]
        epoch = state["epoch"]
        # An epoch past the run's end (a crafted or foreign file) would resume a run with nothing left to train.
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= max(c.epochs for c in configs):
            return None
        if len(state["histories"]) != len(configs):
            return None
        return configs
    except FileNotFoundError:
        return []
    except Exception:  # noqa: BLE001 - any damage (truncated, foreign, older format) means: do not resume
        return None


def _cause(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _dicts(configs: Sequence[TrainConfig]) -> list[str]:
    return sorted(json.dumps(c.to_dict(), sort_keys=True) for c in configs)


def _digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()
