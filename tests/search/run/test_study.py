"""A study's identity: the options and the data its trials were trained on, checked on every rerun."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from search import app
from search.run.study import StudyError, data_identity, prepare
from search.spec import StudySpec
from tests.conftest import write_mnist
from tests.search.conftest import fast_flags, run_search
from trainer import load_mnist


@pytest.mark.parametrize(
    ("flag", "value", "stored"),
    [("limit_train", 150, 200), ("limit_train", None, 200), ("validation", 50, 100), ("limit_test", 50, 100)],
)
def test_a_rerun_with_other_data_flags_is_refused(
    make_spec: Callable[..., StudySpec], flag: str, value: int | None, stored: int
) -> None:
    spec = make_spec("oat")
    prepare(spec)
    with pytest.raises(StudyError, match=f"exists with {flag}={stored!r}, not {flag}={value!r} as asked here"):
        prepare(spec.replace(**{flag: value}))


def test_the_same_images_anywhere_are_the_same_data_and_others_are_refused(
    make_spec: Callable[..., StudySpec], mnist_dir: Path, tmp_path: Path
) -> None:
    spec = make_spec("oat", trials=1, max_epochs=1)
    assert app.run_study(spec, []) == 0
    flat_gzipped = write_mnist(tmp_path / "flat", gz=True)  # the same images, another layout and folder
    assert data_identity(load_mnist(flat_gzipped)) == data_identity(load_mnist(mnist_dir))
    assert app.run_study(spec.replace(data_dir=str(flat_gzipped)), []) == 0
    other = write_mnist(tmp_path / "other", n_train=650)  # 50 more images: other data
    with pytest.raises(StudyError, match=r"exists with data='sha256:\w+', not data='sha256:\w+'.*--data-dir"):
        app.run_study(spec.replace(data_dir=str(other)), [])
    [trial] = optuna.load_study(study_name=spec.name, storage=spec.storage).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE


def test_a_study_made_before_the_data_was_its_identity_resumes_and_keeps_it(
    make_spec: Callable[..., StudySpec],
) -> None:
    spec = make_spec("oat")
    study = optuna.create_study(study_name=spec.name, storage=spec.storage, direction="maximize")
    older = {k: v for k, v in spec.identity().items() if k not in ("limit_train", "validation", "limit_test")}
    for key in [k for k in older if k != "kind"] + ["kind"]:
        study.set_user_attr(key, older[key])
    prepare(spec, data="sha256:0123456789abcdef")
    attrs = optuna.load_study(study_name=spec.name, storage=spec.storage).user_attrs
    assert (attrs["limit_train"], attrs["validation"], attrs["limit_test"]) == (200, 100, 100)
    assert attrs["data"] == "sha256:0123456789abcdef"
    with pytest.raises(StudyError, match="data="):
        prepare(spec, data="sha256:fedcba9876543210")


def test_another_limit_train_on_the_command_line_is_refused_in_one_line(
    make_spec: Callable[..., StudySpec], mnist_dir: Path, tmp_path: Path
) -> None:
    spec = make_spec("oat")
    prepare(spec)  # made on 200 training images
    args = ["oat", "--storage", spec.storage, *fast_flags(mnist_dir)]
    again = run_search(*args, "--limit-train", "150", cwd=tmp_path)
    assert again.returncode != 0
    assert again.stderr.strip().splitlines() == [
        "error: study 'mnist-oat' exists with limit_train=200, not limit_train=150 as asked here: "
        "pass the same options, or another --study-name"
    ]
