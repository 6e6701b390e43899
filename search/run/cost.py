"""What training costs, in units a run turns into seconds by its own pace: networks x steps x a shape's step cost.

A network's training step costs ``weights x (batch_size + UPDATE_IMAGES)`` units: the matrix
products grow with the batch, the optimizer's element-wise passes over the weights cost about
as much as ``UPDATE_IMAGES`` images' products. Fitted to the epoch times of the 27 grid groups
in docs/performance.md ("Batched against per-network products"), it gives each group's cost
within 0.62x-1.24x of its measured one, where the groups' costs span 54x: an ETA that
counts trials, as if every group cost the same, is off by far more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer import TrainConfig

UPDATE_IMAGES = 75


def step_units(weights: int, batch_size: int) -> float:
    """The cost of one network's training step."""
    return weights * (batch_size + UPDATE_IMAGES)


def epoch_units(weights: int, batch_size: int, images: int) -> float:
    """The cost of one network's epoch over ``images`` training images."""
    return step_units(weights, batch_size) * -(-images // batch_size)


def run_units(event: Mapping[str, Any], epochs: float | None = None) -> float:
    """The cost of a run a progress event describes (``trainer.objective.GroupProgress``): all of it, or
    its first ``epochs`` epochs (a fraction: that share of the next one), each network up to its own epochs."""
    per_epoch = epoch_units(event["weights"], event["batch_size"], event["images"])
    own = event["network_epochs"]
    if epochs is None:
        return per_epoch * sum(own)
    whole = int(epochs)
    return per_epoch * sum(min(whole, e) + (epochs - whole if e > whole else 0.0) for e in own)


@dataclass(frozen=True)
class Plan:
    """What a grid or oat study has left to train: its groups (runs), their networks and their cost."""

    groups: int
    networks: int
    units: float


def plan(configs: Iterable[TrainConfig], images: int) -> Plan:
    """The plan of ``configs`` (every point left under each seed): those of one ``run_key`` are a group,
    those of one ``member_key`` a network of it, trained for the longest epochs any of them asks."""
    from trainer.loop import member_key, run_key  # torch
    from trainer.model import weights_of

    longest: dict[TrainConfig, TrainConfig] = {}
    for config in configs:
        network = member_key(config)
        if network not in longest or config.epochs > longest[network].epochs:
            longest[network] = config
    units = sum(epoch_units(weights_of(c), c.batch_size, images) * c.epochs for c in longest.values())
    groups = {run_key(c) for c in longest.values()}
    return Plan(groups=len(groups), networks=len(longest), units=units)
