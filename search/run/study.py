"""What a study is on its storage: created once, its identity checked, its checkpoints' folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from search.spec import StudySpec
from search.storage import Store, artifact_dir, open_store

if TYPE_CHECKING:
    from trainer.checkpoint import CheckpointFolder

OBJECTIVE_NAME = "validation accuracy"


class StudyError(Exception):
    """The study cannot be run as asked (it exists with another kind, direction...)."""


def prepare(spec: StudySpec, store: Store | None = None) -> optuna.Study:
    """Create the study in ``store`` (opened here when None), or check that the existing one is the same kind."""
    store = store or open_store(spec.storage, spec.heartbeat, spec.artifacts)
    with store.lock(spec.name):
        study = optuna.create_study(
            study_name=spec.name, storage=store.storage, direction="maximize", load_if_exists=True
        )
        if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise StudyError(
                f"study {spec.name!r} exists with direction "
                f"{', '.join(d.name.lower() for d in study.directions)}; this service "
                "maximizes validation accuracy: pass another --study-name"
            )
        _settle_identity(study, spec)
    return study


def _settle_identity(study: optuna.Study, spec: StudySpec) -> None:
    """Write the study's identity, or check it against ``spec``; called under the study's lock.

    Optuna writes one attribute per transaction, so ``kind`` is written last and marks a
    finished creation: a study without it was cut short (kill -9) before any trial ran,
    and its creation is done again here. A finished study missing other keys (made by an
    older version that wrote ``kind`` first) gets them added when the present ones match.
    """
    identity = spec.identity()
    attrs = study.user_attrs
    if "kind" in attrs:
        seeded = attrs["kind"] == spec.kind and spec.kind_of.seeded_order
        if seeded and "grid_order" not in attrs and study.get_trials(deepcopy=False):
            raise StudyError(
                f"study {spec.name!r} was made by an older version that ordered the grid's points otherwise: "
                "resuming it would run some points twice and skip others; pass another --study-name"
            )
        mismatch = ", ".join(f"{k}={attrs[k]!r}" for k, v in identity.items() if k in attrs and attrs[k] != v)
        if mismatch:
            raise StudyError(
                f"study {spec.name!r} exists with {mismatch}, not {spec.kind} as asked here: "
                "pass the same options or another --study-name"
            )
    # optuna-dashboard reads the objective's name from here (its set_objective_names is deprecated).
    if study.metric_names != [OBJECTIVE_NAME]:
        study.set_metric_names([OBJECTIVE_NAME])
    for key in [k for k in identity if k != "kind"] + ["kind"]:
        if attrs.get(key, _MISSING) != identity[key]:
            study.set_user_attr(key, identity[key])


_MISSING = object()


def checkpoint_folder(spec: StudySpec, store: Store | None = None) -> CheckpointFolder:
    """The checkpoints of the study's running groups: beside its artifacts, in the store's own folder."""
    from trainer.checkpoint import CheckpointFolder  # torch: not for the commands that only read

    if store is None:  # without an opened store: the folder its workers use, made when not there yet
        folder = artifact_dir(spec.storage, spec.artifacts)
        folder.mkdir(parents=True, exist_ok=True)
        return CheckpointFolder(folder, spec.name)
    return CheckpointFolder(store.artifact_dir, spec.name)
