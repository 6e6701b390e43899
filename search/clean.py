"""``python -m search clean``: remove the checkpoints of studies no longer in their storage.

A group's checkpoint is removed when its run ends; one of an interrupted run stays for the
rerun to resume. When its study is deleted (from the dashboard, ``optuna delete-study``) no
rerun comes, and nothing else would ever remove it.
"""

from __future__ import annotations

import sys

import optuna

from search.run.study import StudyError
from search.storage import artifact_dir, mask_url, open_reader


def clean(storage_url: str, artifacts: str | None = None) -> int:
    """Remove from the storage's artifact folder every checkpoint of a study the storage no longer holds.

    The folder is taken to be the storage's own (beside a SQLite file, or ``artifacts``): the
    checkpoints of another storage's studies in a shared folder would go too. Checkpoints of a
    study that exists are kept, whatever their identity (another run's data may resume them).
    """
    from trainer.checkpoint import checkpoint_study, study_prefix  # torch: only this command needs it

    folder = artifact_dir(storage_url, artifacts)
    # Listed before the studies: a checkpoint found here was written by a study that existed before the listing.
    found = folder.glob("*checkpoint-*") if folder.is_dir() else []
    files = sorted(p for p in found if checkpoint_study(p) is not None)
    storage = open_reader(storage_url)
    if storage is None:
        raise StudyError(f"no storage at {mask_url(storage_url)}: nothing cleaned (is the URL right?)")
    live = {study_prefix(name) for name in optuna.get_all_study_names(storage)}
    gone = [p for p in files if checkpoint_study(p) not in live]
    for path in gone:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise StudyError(f"cannot remove the checkpoint {path}: {e.strerror or e}") from e
    kept = len(files) - len(gone)
    print(
        f"removed {len(gone)} checkpoint file(s) of deleted studies from {folder}; kept {kept} of studies there",
        file=sys.stderr,
    )
    return 0
