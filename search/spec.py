"""What a study run is asked to do: one frozen, validated description shared by all its workers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from search.space import (
    SEVEN,
    Parameter,
    distributions,
    factorial_space,
    grid_distributions,
    grid_points,
    oat_moves,
    oat_points,
    search_space,
)
from search.storage import DEFAULT_STORAGE, check_url
from trainer.config import MAX_EPOCHS, MAX_THREADS, TrainConfig
from trainer.errors import UsageError

PRUNERS = ("median", "hyperband", "none")
COMPILE = ("auto", "on", "off")
# The grid's order of points; 2: by groups of one shape and batch size (1, unwritten: by shared runs).
GRID_ORDER = 2
DEFAULT_TRIALS = 50  # random and tpe; grid and oat default to all their points
MAX_HEARTBEAT = 3600  # seconds: a trial silent for twice this (two hours) is failed; Python's timers overflow far above
MAX_SEEDS = 100  # each point trains once per seed: beyond this a study is a mistake, not a plan
MAX_SEED = 2**31 - 1  # seeds plus worker offsets and training-seed counts stay below numpy's 2**32 and torch's 2**64

Space = tuple[Parameter, ...]


@dataclass(frozen=True)
class Objective:
    """What a study optimizes: a name on the command line, a direction, and its name in the dashboard."""

    name: str
    direction: str
    metric: str


# accuracy: the validation accuracy (mean over seeds); parameters: the network's, exact; seconds: the
# trial's training time (its share of a group's run), measured, so as noisy as the machine.
OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("accuracy", "maximize", "validation accuracy"),
        Objective("parameters", "minimize", "parameters"),
        Objective("seconds", "minimize", "training seconds"),
    )
}


@dataclass(frozen=True)
class Kind:
    """A study kind: fixed points (grid, oat) or a sampler's proposals (random, tpe), and its defaults.

    ``points`` gives a points kind's fixed points, in order, from the space, the seed and
    the epoch cap; ``sampler`` a sampler kind's sampler from its seed. Exactly one is set.
    ``seeded_order``: the seed orders the points, so it is part of the study's identity.
    """

    name: str
    summary: str  # the command's one-line help
    points: Callable[[Space, int, int | None], list[dict[str, Any]]] | None = None
    sampler: Callable[[int], optuna.samplers.BaseSampler] | None = None
    seeded_order: bool = False

    @property
    def has_points(self) -> bool:
        """Grid and oat: the study runs fixed points (they share runs, take --separate-runs)."""
        return self.points is not None

    @property
    def default_pruner(self) -> str:
        # Fixed points are all to be run; a sampler's poor proposals stop early.
        return "none" if self.has_points else "median"

    @property
    def default_trials(self) -> int | None:
        """None: every point."""
        return None if self.has_points else DEFAULT_TRIALS


def oat_baseline(max_epochs: int | None) -> TrainConfig:
    """The one-at-a-time baseline (``TrainConfig``'s defaults), its epochs capped at ``max_epochs``."""
    baseline = TrainConfig()
    return baseline.replace(epochs=min(baseline.epochs, max_epochs or MAX_EPOCHS))


def _oat(space: Space, seed: int, max_epochs: int | None) -> list[dict[str, Any]]:
    return oat_points(space, oat_baseline(max_epochs))


KIND_TABLE: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "grid",
            "the full reference grid, 3^7 = 2,187 points, each run once",
            points=lambda space, seed, max_epochs: grid_points(space, seed),
            seeded_order=True,
        ),
        Kind(
            "random",
            "random search over the space's distributions",
            sampler=lambda seed: optuna.samplers.RandomSampler(seed=seed),
        ),
        Kind(
            "tpe",
            "Bayesian search with Optuna's multivariate TPE sampler",
            # constant_liar: parallel workers do not propose the same point while one trains it.
            sampler=lambda seed: optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed),
        ),
        Kind(
            "oat",
            f"one parameter at a time: the baseline, then each parameter moved alone "
            f"({len(oat_moves(SEVEN, TrainConfig()))} trials, fewer under --max-epochs)",
            points=_oat,
        ),
        Kind(
            "gp",
            "Bayesian search with Optuna's Gaussian-process sampler (slower decisions, fewer trials)",
            sampler=lambda seed: optuna.samplers.GPSampler(seed=seed),
        ),
        Kind(
            "nsga2",
            "Optuna's NSGA-II evolutionary sampler, for accuracy against cost (--objectives)",
            sampler=lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
        ),
    )
}
KINDS = tuple(KIND_TABLE)


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
    workers: int | None = 1  # None: as many as plan.default_workers starts
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
    objectives: tuple[str, ...] = ("accuracy",)  # accuracy first; parameters, seconds: a multi-objective study
    threads: int = 1  # torch's CPU threads in each worker: more than one per core slows a shared machine
    vary: tuple[str, ...] = ()  # grid: only these parameters over their grid values, the others at the oat baseline

    def __post_init__(self) -> None:
        if self.kind not in KIND_TABLE:
            raise UsageError(f"study kind must be one of {', '.join(KINDS)}, but got {self.kind!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"seed must be an integer in 0..{MAX_SEED}, but got seed={self.seed!r}.")
        if self.compile not in COMPILE:
            raise UsageError(f"compile must be one of {', '.join(COMPILE)}, but got compile={self.compile!r}.")
        if self.pruner is not None and self.pruner not in PRUNERS:
            raise UsageError(f"pruner must be one of {', '.join(PRUNERS)}, but got pruner={self.pruner!r}.")
        for name in ("trials", "workers"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be an integer >= 1, but got {name}={value!r}.")
        _check_range("heartbeat", self.heartbeat, MAX_HEARTBEAT)
        _check_range("threads", self.threads, MAX_THREADS)
        _check_range("seeds", self.seeds, MAX_SEEDS)
        if self.max_epochs is not None:
            _check_range("max_epochs", self.max_epochs, MAX_EPOCHS)
        if self.timeout is not None and not self.timeout > 0:
            raise UsageError(f"timeout must be > 0 seconds, but got timeout={self.timeout!r}.")
        _check_objectives(self.objectives, self.kind_of)
        if len(self.objectives) > 1 and self.pruner not in (None, "none"):
            raise UsageError(
                "a multi-objective study cannot prune (Optuna's pruners read one objective's intermediate "
                f"values): pass --pruner none or leave it out, but got pruner={self.pruner!r}."
            )
        TrainConfig(seed=self.seed, device=self.device)  # validates both
        check_url(self.storage)
        # In the space's order, so that the same set named in another order is the same study.
        object.__setattr__(self, "vary", _check_vary(tuple(self.vary), self.kind, search_space(self.regularization)))

    @property
    def name(self) -> str:
        return self.study_name or f"mnist-{self.kind}"

    @property
    def kind_of(self) -> Kind:
        return KIND_TABLE[self.kind]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[name].direction for name in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        """The objectives' names as the dashboard shows them."""
        return [OBJECTIVES[name].metric for name in self.objectives]

    @property
    def pruner_name(self) -> str:
        # Optuna's pruners read one objective's intermediate values, which a multi-objective
        # trial cannot report (Trial.report raises): such a study does not prune.
        if self.multi_objective:
            return "none"
        return self.pruner or self.kind_of.default_pruner

    @property
    def space(self) -> tuple[Parameter, ...]:
        space = search_space(self.regularization, self.max_epochs)
        return factorial_space(space, self.vary, oat_baseline(self.max_epochs)) if self.vary else space

    @property
    def distributions(self) -> dict[str, Any]:
        return grid_distributions(self.space) if self.grid_space else distributions(self.space)

    def points(self) -> list[dict[str, Any]] | None:
        """The fixed points a grid or oat study runs, in order; None for samplers."""
        points = self.kind_of.points
        return points(self.space, self.seed, self.max_epochs) if points is not None else None

    @property
    def budget(self) -> int:
        if self.trials is not None:
            return self.trials
        points = self.points()
        return len(points) if points is not None else self.kind_of.default_trials or DEFAULT_TRIALS

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
        from trainer.loop import member_key  # torch: not for a command's --help

        longest: dict[TrainConfig, TrainConfig] = {}
        for config in (base.replace(**point) for point in points):
            network = member_key(config)
            if network not in longest or config.epochs > longest[network].epochs:
                longest[network] = config
        steps = sum(_parameter_steps(c, train_images) for c in longest.values())
        return self.seeds * steps * min(trials_left, len(points)) / len(points)

    def networks(self) -> int | None:
        """How many networks a grid or oat study trains (points differing only in epochs or nll/cross_entropy
        share one); None for samplers."""
        points = self.points()
        if points is None:
            return None
        from trainer.loop import member_key

        base = TrainConfig(seed=self.seed)
        return len({member_key(base.replace(**point)) for point in points})

    def pruner_object(self) -> optuna.pruners.BasePruner:
        if self.pruner_name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
        if self.pruner_name == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=self.max_epochs or MAX_EPOCHS, reduction_factor=3
            )
        return optuna.pruners.NopPruner()

    def sampler(self, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
        """The kind's sampler; grid and oat run enqueued points, which Optuna's random sampler passes through."""
        sampler = self.kind_of.sampler or KIND_TABLE["random"].sampler
        assert sampler is not None
        return sampler(self.seed + seed_offset)

    def replace(self, **changes: Any) -> StudySpec:
        return dataclasses.replace(self, **changes)

    def identity(self) -> dict[str, Any]:
        """What must match for a run to join an existing study of this name."""
        # A trial's value is a mean over its seeds: a study mixing K cannot compare its trials.
        identity: dict[str, Any] = {"kind": self.kind, "regularization": self.regularization, "seeds": self.seeds}
        identity["max_epochs"] = self.max_epochs  # it changes the space
        identity["space"] = "grid" if self.grid_space else "full"  # so does --space grid
        identity["objectives"] = ",".join(self.objectives)
        identity["vary"] = ",".join(self.vary)  # a factorial's grid is its varied set
        # The images a trial trains, validates and tests on: a study mixing them compares nothing.
        identity["limit_train"] = self.limit_train
        identity["validation"] = self.validation
        identity["limit_test"] = self.limit_test
        if self.kind_of.seeded_order:
            identity["seed"] = self.seed  # it orders the grid's points
            identity["grid_order"] = GRID_ORDER
        return identity


def _check_objectives(objectives: tuple[str, ...], kind: Kind) -> None:
    names = ",".join(objectives)
    known = ", ".join(OBJECTIVES)
    if not objectives or objectives[0] != "accuracy" or len(set(objectives)) != len(objectives):
        raise UsageError(
            f"objectives must be accuracy followed by none, one or both of parameters, seconds, each once, "
            f"but got objectives={names!r}."
        )
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise UsageError(f"objectives must be among {known}, but got {unknown[0]!r} in objectives={names!r}.")
    if len(objectives) > 1 and kind.has_points:
        raise UsageError(
            f"a {kind.name} study runs fixed points and has one objective; its front of accuracy against "
            f"parameters and seconds is in `python -m search effects`, but got objectives={names!r}."
        )


def _check_vary(vary: tuple[str, ...], kind: str, space: Space) -> tuple[str, ...]:
    """``vary`` in the space's order; refused in one line unless a grid study names known parameters once each."""
    if not vary:
        return ()
    names = [p.name for p in space]
    text = ",".join(vary)
    if kind != "grid":
        raise UsageError(f"vary is for grid studies (a factorial over some parameters), but got it for {kind}.")
    unknown = [name for name in vary if name not in names]
    if unknown:
        raise UsageError(
            f"vary must name parameters among {', '.join(names)}, but got {unknown[0]!r} in vary={text!r}."
        )
    if len(set(vary)) != len(vary):
        raise UsageError(f"vary must name each parameter once, but got vary={text!r}.")
    return tuple(name for name in names if name in vary)


def _parameter_steps(config: TrainConfig, train_images: int) -> int:
    from trainer.model import weights_of

    return weights_of(config) * config.epochs * -(-train_images // config.batch_size)


def _check_range(name: str, value: Any, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise UsageError(f"{name} must be an integer in 1..{high}, but got {name}={value!r}.")
