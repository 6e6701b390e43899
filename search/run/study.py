"""What a study is on its storage: created once, its identity checked, its checkpoints' folder."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from sqlalchemy.engine import make_url

from search import records
from search.spec import StudySpec
from search.storage import Store, artifact_dir, journal_path, open_store, sqlite_path

if TYPE_CHECKING:
    from trainer.checkpoint import CheckpointFolder
    from trainer.data import MNIST


class StudyError(Exception):
    """The study cannot be run as asked (it exists with another kind, direction...)."""


def prepare(spec: StudySpec, store: Store | None = None, data: str | None = None) -> optuna.Study:
    """Create the study in ``store`` (opened here when None), or check that the existing one is the same.

    ``data``: the loaded data's ``data_identity``, part of the study's identity when given.
    """
    store = store or open_store(spec.storage, spec.heartbeat, spec.artifacts)
    with store.lock(spec.name):
        study = optuna.create_study(
            study_name=spec.name, storage=store.storage, directions=spec.directions, load_if_exists=True
        )
        found = [d.name.lower() for d in study.directions]
        if found != spec.directions:
            raise StudyError(
                f"study {spec.name!r} exists with direction(s) {', '.join(found)}, not {', '.join(spec.directions)} "
                f"as --objectives {','.join(spec.objectives)} asks: pass the same --objectives or another --study-name"
            )
        _settle_identity(study, spec, data)
    return study


def data_identity(data: MNIST) -> str:
    """A hash of MNIST's pixels and labels as loaded: the same files, gzipped or not, anywhere, give the same.

    The pixels are hashed as the bytes the files hold, recovered from the normalized tensors,
    so that no change in float rounding between versions turns a study's data into other data.
    """
    import torch  # not for the commands that only read

    from trainer.data import MEAN, STD

    digest = hashlib.sha256()
    for images, labels in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        pixels = torch.addcmul(torch.tensor(MEAN * 255 + 0.5), images.cpu(), torch.tensor(STD * 255))
        digest.update(pixels.to(torch.uint8).numpy())
        digest.update(labels.cpu().numpy())
    return f"sha256:{digest.hexdigest()[:16]}"


def _settle_identity(study: optuna.Study, spec: StudySpec, data: str | None = None) -> None:
    """Write the study's identity, or check it against ``spec``; called under the study's lock.

    Optuna writes one attribute per transaction, so ``kind`` is written last and marks a
    finished creation: a study without it was cut short (kill -9) before any trial ran,
    and its creation is done again here. A finished study missing other keys (made by an
    older version that wrote ``kind`` first, or before the data flags and ``data`` were
    part of the identity) gets them added when the present ones match.
    """
    identity = spec.identity() | ({"data": data} if data is not None else {})
    attrs = study.user_attrs
    if "kind" in attrs:
        seeded = attrs["kind"] == spec.kind and spec.kind_of.seeded_order
        if seeded and "grid_order" not in attrs and study.get_trials(deepcopy=False):
            raise StudyError(
                f"study {spec.name!r} was made by an older version that ordered the grid's points otherwise: "
                "resuming it would run some points twice and skip others; pass another --study-name"
            )
        differ = [k for k, v in identity.items() if attrs.get(k, _BEFORE.get(k, v)) != v]
        if differ:
            found = {k: attrs.get(k, _BEFORE.get(k)) for k in differ}
            data_hint = "point --data-dir at the study's MNIST files, " if "data" in differ else ""
            raise StudyError(
                f"study {spec.name!r} exists with {', '.join(f'{k}={v!r}' for k, v in found.items())}, "
                f"not {', '.join(f'{k}={identity[k]!r}' for k in differ)} as asked here: "
                f"pass the same options, {data_hint}or another --study-name"
            )
    # optuna-dashboard reads the objective's name from here (its set_objective_names is deprecated).
    if study.metric_names != spec.metric_names:
        study.set_metric_names(spec.metric_names)
    if records.STUDY_TOKEN not in attrs:  # this study, not another made under its name before or elsewhere
        study.set_user_attr(records.STUDY_TOKEN, uuid.uuid4().hex)
    for key in [k for k in identity if k != "kind"] + ["kind"]:
        if attrs.get(key, _MISSING) != identity[key]:
            study.set_user_attr(key, identity[key])


_MISSING = object()
# What a study made before an identity key existed meant by it (a key absent here is not compared).
_BEFORE: dict[str, object] = {"vary": ""}


def checkpoint_folder(spec: StudySpec, study: optuna.Study, store: Store | None = None) -> CheckpointFolder:
    """The checkpoints of the study's running groups: beside its artifacts, in the store's own folder.

    They belong to this study on this storage with this data (``checkpoint_identity``): a
    study deleted and made again under its name, another database's study of that name
    sharing the folder, or a rerun on other data resumes none of them.
    """
    from trainer.checkpoint import CheckpointFolder  # torch: not for the commands that only read

    if store is None:  # without an opened store: the folder its workers use, made when not there yet
        folder = artifact_dir(spec.storage, spec.artifacts)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = store.artifact_dir
    return CheckpointFolder(folder, spec.name, checkpoint_identity(spec, study))


def checkpoint_identity(spec: StudySpec, study: optuna.Study) -> str:
    """The storage, the study's id and creation token there, and the data flags, as one text."""
    db, log = sqlite_path(spec.storage), journal_path(spec.storage)
    if db is not None:
        where = f"sqlite:{db.resolve()}"
    elif log is not None:
        where = f"journal:{log.resolve()}"
    else:
        url = make_url(spec.storage)
        where = f"{url.get_backend_name()}:{url.host}:{url.port}/{url.database}"
    data = {
        "data_dir": str(Path(spec.data_dir).resolve()) if spec.data_dir else None,
        "limit_train": spec.limit_train,
        "validation": spec.validation,
        "limit_test": spec.limit_test,
    }
    token = study.user_attrs.get(records.STUDY_TOKEN)
    # The study's id has no public view; with the token it tells a study from one made again under its name.
    return json.dumps([where, study._study_id, token, data], sort_keys=True)
