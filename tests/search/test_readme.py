"""The README's code does what it says."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch

from search import app
from search.spec import StudySpec
from tests.conftest import REPO
from trainer import load_mnist, split


def readme_block(containing: str) -> str:
    """The README's fenced Python block that holds ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if containing in b]
    return block


def test_the_readme_rebuilds_the_best_network_from_what_best_prints(
    make_spec: Callable[..., StudySpec], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_spec("random", trials=2, pruner="none", regularization=True)  # dropout: eval() matters
    assert app.run_study(spec, []) == 0
    capsys.readouterr()
    assert app.best(spec.storage, spec.name) == 0
    printed = capsys.readouterr().out
    path = re.search(r"model artifact: \S+, file (\S+) ", printed).group(1)  # type: ignore[union-attr]
    params = {k: v for k, v in app.load(spec.storage, spec.name).best_trial.params.items()}
    scope: dict[str, object] = {"params": params, "path": path}
    exec(readme_block("build_model"), scope)  # noqa: S102 - the README's own code
    data = split(load_mnist(spec.data_dir), spec.validation, spec.limit_train, spec.limit_test)
    with torch.no_grad():
        predicted = scope["model"](data.test_x).argmax(dim=1)  # type: ignore[operator]
    accuracy = (predicted == data.test_y).float().mean().item()
    best = app.load(spec.storage, spec.name).best_trial
    assert accuracy == pytest.approx(best.user_attrs["test_accuracy"], abs=1 / len(data.test_y))
