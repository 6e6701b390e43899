"""What a study run is asked to do: one frozen, validated description shared by all its workers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import optuna

from search.space import Parameter, distributions, grid_distributions, grid_points, oat_points, search_space
from search.storage import DEFAULT_STORAGE, check_url
from trainer import TrainConfig, UsageError
from trainer.config import MAX_EPOCHS
from trainer.loop import member_key
from trainer.model import weights_of

KINDS = ("grid", "random", "tpe", "oat")
PRUNERS = ("median", "hyperband", "none")
COMPILE = ("auto", "on", "off")
# The grid's order of points; 2: by groups of one shape and batch size (1, unwritten: by shared runs).
GRID_ORDER = 2
DEFAULT_TRIALS = 50  # random and tpe; grid and oat default to all their points
MAX_SEEDS = 100  # each point trains once per seed: beyond this a study is a mistake, not a plan


@dataclass(frozen=True)
class StudySpec:
    """A study and how to run it. ``trials`` is the study's total of finished trials.

    Each point trains under the ``seeds`` training seeds ``seed, seed + 1, ...``.
    """

    kind: str
    study_name: str | None = None
    storage: str = DEFAULT_STORAGE
    trials: int | None = None
    timeout: float | None = None
    seed: int = 1
    seeds: int = 1
    max_epochs: int | None = None
    pruner: str | None = None
    regularization: bool = False
    heartbeat: int = 60
    workers: int = 1
    artifacts: str | None = None
    data_dir: str | None = None
    validation: int = 10_000
    limit_train: int | None = None
    limit_test: int | None = None
    device: str = "auto"
    download: bool = True
    share_runs: bool = True
    grid_space: bool = False  # random and tpe over the grid's values only (the tabular benchmark's space)
    compile: str = "auto"  # the CPU's Adadelta update compiled: on, off, or auto (when it pays back)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"study kind must be one of {', '.join(KINDS)}, but got {self.kind!r}.")
        if self.compile not in COMPILE:
            raise UsageError(f"compile must be one of {', '.join(COMPILE)}, but got compile={self.compile!r}.")
        if self.pruner is not None and self.pruner not in PRUNERS:
            raise UsageError(f"pruner must be one of {', '.join(PRUNERS)}, but got pruner={self.pruner!r}.")
        for name in ("trials", "workers", "heartbeat"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be an integer >= 1, but got {name}={value!r}.")
        _check_range("seeds", self.seeds, MAX_SEEDS)
        if self.max_epochs is not None:
            _check_range("max_epochs", self.max_epochs, MAX_EPOCHS)
        if self.timeout is not None and not self.timeout > 0:
            raise UsageError(f"timeout must be > 0 seconds, but got timeout={self.timeout!r}.")
        TrainConfig(seed=self.seed, device=self.device)  # validates both
        check_url(self.storage)

    @property
    def name(self) -> str:
        return self.study_name or f"mnist-{self.kind}"

    @property
    def pruner_name(self) -> str:
        return self.pruner or ("median" if self.kind in ("random", "tpe") else "none")

    @property
    def space(self) -> tuple[Parameter, ...]:
        return search_space(self.regularization, self.max_epochs)

    @property
    def distributions(self) -> dict[str, Any]:
        return grid_distributions(self.space) if self.grid_space else distributions(self.space)

    def points(self) -> list[dict[str, Any]] | None:
        """The fixed points a grid or oat study runs, in order; None for samplers."""
        if self.kind == "grid":
            return grid_points(self.space, self.seed)
        if self.kind == "oat":
            baseline = TrainConfig()
            return oat_points(self.space, baseline.replace(epochs=min(baseline.epochs, self.max_epochs or MAX_EPOCHS)))
        return None

    @property
    def budget(self) -> int:
        if self.trials is not None:
            return self.trials
        points = self.points()
        return len(points) if points is not None else DEFAULT_TRIALS

    def parameter_steps(self, train_images: int, trials_left: int) -> float:
        """The training left, in parameters x optimizer steps summed over networks, all workers together.

        A grid or oat network (the points that differ only in epochs and nll/cross_entropy)
        counts once, at its longest epochs, and the points left are that share of the whole;
        a sampler's trial counts as the baseline.
        """
        base = TrainConfig(seed=self.seed)
        points = self.points()
        if points is None:
            baseline = base.replace(epochs=min(base.epochs, self.max_epochs or MAX_EPOCHS))
            return self.seeds * _parameter_steps(baseline, train_images) * trials_left
        longest: dict[TrainConfig, TrainConfig] = {}
        for config in (base.replace(**point) for point in points):
            network = member_key(config)
            if network not in longest or config.epochs > longest[network].epochs:
                longest[network] = config
        steps = sum(_parameter_steps(c, train_images) for c in longest.values())
        return self.seeds * steps * min(trials_left, len(points)) / len(points)

    def pruner_object(self) -> optuna.pruners.BasePruner:
        if self.pruner_name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
        if self.pruner_name == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=self.max_epochs or MAX_EPOCHS, reduction_factor=3
            )
        return optuna.pruners.NopPruner()

    def sampler(self, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
        """TPE (multivariate, constant liar for parallel workers) or random; grid and oat use enqueued points."""
        seed = self.seed + seed_offset
        if self.kind == "tpe":
            return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def replace(self, **changes: Any) -> StudySpec:
        return dataclasses.replace(self, **changes)

    def identity(self) -> dict[str, Any]:
        """What must match for a run to join an existing study of this name."""
        # A trial's value is a mean over its seeds: a study mixing K cannot compare its trials.
        identity: dict[str, Any] = {"kind": self.kind, "regularization": self.regularization, "seeds": self.seeds}
        identity["max_epochs"] = self.max_epochs  # it changes the space
        identity["space"] = "grid" if self.grid_space else "full"  # so does --space grid
        if self.kind == "grid":
            identity["seed"] = self.seed  # it orders the grid's points
            identity["grid_order"] = GRID_ORDER
        return identity


def _parameter_steps(config: TrainConfig, train_images: int) -> int:
    return weights_of(config) * config.epochs * -(-train_images // config.batch_size)


def _check_range(name: str, value: Any, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise UsageError(f"{name} must be an integer in 1..{high}, but got {name}={value!r}.")
