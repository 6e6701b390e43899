"""The table as a problem any Optuna sampler can be run on, shaped like ``optunahub.benchmarks.BaseProblem``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from search.bench.table import FIDELITY, Table
from search.space import SEVEN, Parameter
from trainer.config import TrainConfig
from trainer.model import weights_of
from trainer.objective import suggest

# Parameters whose grid values are ordered; the others (activation, loss) are categories.
CATEGORICAL = ("activation", "loss")
SEVEN_NAMES = tuple(p.name for p in SEVEN)


class TableProblem:
    """Look a grid point up in a ``Table`` instead of training it.

    ``search_space`` is the grid's values of the seven parameters (categorical, as in
    ``python -m search tpe --space grid``); ``evaluate`` returns the seed-mean validation
    accuracy after the point's ``epochs``, NaN when its run diverged. With ``ordinal=True``
    the ordered parameters are instead integer indices into their values (0, 1, 2), so that
    a sampler that models order (GP) can use it; ``params`` decodes them.
    """

    def __init__(self, table: Table, ordinal: bool = False) -> None:
        self.table, self.ordinal = table, ordinal
        values = {**table.values, FIDELITY: tuple(table.fidelities)}
        # In the order of the study's space: samplers draw the parameters in this order.
        order = [p.name for p in SEVEN if p.name in values] + [name for name in values if name not in SEVEN_NAMES]
        self.values = {name: values[name] for name in order}
        # [point, epoch], NaN where any seed diverged; in float64, as a live study averages its seeds' values.
        accuracy = table.metric("val_accuracy").astype(np.float64).mean(axis=1)
        with warnings.catch_warnings():  # all-NaN rows (a point diverged in epoch 1) stay NaN, then get filled
            warnings.simplefilter("ignore", RuntimeWarning)
            seconds = np.nanmean(table.metric("seconds").astype(np.float64), axis=1)
            # A diverged epoch has no time recorded: charge the point's mean epoch, else the table's median.
            seconds = np.where(np.isnan(seconds), np.nanmean(seconds, axis=1, keepdims=True), seconds)
            self._seconds = np.where(np.isnan(seconds), np.nanmedian(seconds), seconds)
        self._accuracy = accuracy
        self._test = table.metric("test_accuracy").astype(np.float64).mean(axis=1)

    @property
    def search_space(self) -> dict[str, BaseDistribution]:
        if not self.ordinal:
            return {name: CategoricalDistribution(values) for name, values in self.values.items()}
        return {
            name: CategoricalDistribution(values) if name in CATEGORICAL else IntDistribution(0, len(values) - 1)
            for name, values in self.values.items()
        }

    @property
    def directions(self) -> list[optuna.study.StudyDirection]:
        return [optuna.study.StudyDirection.MAXIMIZE]

    def grid(self) -> tuple[Parameter, ...]:
        """The table's grid as the space's parameters (for ``search.space.grid_points``)."""
        return tuple(Parameter(name, values, CategoricalDistribution(values)) for name, values in self.values.items())

    def params(self, suggested: dict[str, Any]) -> dict[str, Any]:
        """The grid values of a trial's suggested parameters (decoding ordinal indices)."""
        if not self.ordinal:
            return dict(suggested)
        return {name: value if name in CATEGORICAL else self.values[name][value] for name, value in suggested.items()}

    def curve(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The point's per-epoch validation accuracy and seconds, up to its ``epochs``."""
        row, epochs = self.table.index(params), int(params[FIDELITY])
        return self._accuracy[row, :epochs], self._seconds[row, :epochs]

    def test_accuracy(self, params: dict[str, Any]) -> float | None:
        """The point's seed-mean test accuracy after its ``epochs`` (None where its run diverged)."""
        value = float(self._test[self.table.index(params), int(params[FIDELITY]) - 1])
        return None if np.isnan(value) else value

    def cost(self, params: dict[str, Any], name: str) -> float:
        """The point's ``parameters`` (its network's, exact) or ``seconds`` (its recorded training time)."""
        if name == "parameters":
            shape = {k: int(params[k]) for k in ("hidden_layers", "hidden_units")}
            return float(weights_of(TrainConfig(**shape)))
        return float(np.sum(self.curve(params)[1]))

    def evaluate(self, params: dict[str, Any]) -> float:
        """The validation accuracy of a point given in grid values (NaN: its run diverged)."""
        return float(self.curve(params)[0][-1])

    def __call__(self, trial: optuna.Trial) -> float:
        """An objective: suggest from ``search_space``, report each epoch (pruners act), return the value."""
        params = self.params(suggest(trial, self.search_space))
        values, _ = self.curve(params)
        for epoch, value in enumerate(values, start=1):
            if np.isnan(value):
                return float("nan")  # Optuna fails a trial whose value is NaN, as a live study fails a diverged run
            trial.report(float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(values[-1])
