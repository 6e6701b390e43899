"""The tabular benchmark's file: every grid point's learning curves, per seed, in one npz.

The file is a plain ``numpy.savez_compressed`` archive that opens without this project:

- ``curves``: float32, shape ``[point, seed, epoch, metric]``. A point is one combination
  of the grid's values of every parameter except the fidelity (``epochs``); its curve is
  one run of ``max(epochs)`` epochs, and the 5- and 14-epoch grid points are its prefixes.
  Epochs after a run diverged are NaN.
- ``header``: a JSON string (a 0-d unicode array) with ``format`` and ``version``, the
  ``parameters`` and their ``values`` (points are their row-major product, the first
  parameter varying slowest, as ``itertools.product``), the ``fidelity`` and its values,
  the ``metrics``, the ``seeds``, the ``data`` it was trained on, ``device``, ``torch``,
  ``optuna``, ``created`` (UTC), ``content_hash`` (sha256 of the curves' bytes) and
  ``header_hash`` (sha256 of the rest of the header as sorted JSON, the content hash in it).
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "mnist-hpo-tabular"
VERSION = 1
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "seconds")
FIDELITY = "epochs"


class TableError(Exception):
    """A file that is not a benchmark table of this version; the message names the file and why."""


@dataclass(frozen=True)
class Table:
    """Learning curves of every point of a grid, for several training seeds.

    ``values`` maps each non-fidelity parameter to its grid values (in grid order);
    ``fidelities`` are the epoch counts a trial may ask; ``curves`` is indexed
    ``[point, seed, epoch, metric]`` with ``epoch`` 0 holding epoch 1.
    """

    values: dict[str, tuple[Any, ...]]
    fidelities: tuple[int, ...]
    seeds: tuple[int, ...]
    curves: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (self.n_points, len(self.seeds), max(self.fidelities), len(METRICS))
        if self.curves.shape != shape:
            raise ValueError(f"curves must have shape {shape}, but got {self.curves.shape}.")

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.values)

    @property
    def n_points(self) -> int:
        return int(np.prod([len(v) for v in self.values.values()]))

    def points(self) -> list[dict[str, Any]]:
        """Every point without the fidelity, in the curves' order."""
        return [dict(zip(self.values, combo, strict=True)) for combo in itertools.product(*self.values.values())]

    def index(self, params: dict[str, Any]) -> int:
        """The curves' row of a point (``params`` may hold the fidelity too; it is ignored)."""
        try:
            where = [self.values[name].index(params[name]) for name in self.values]
        except (KeyError, ValueError):
            raise KeyError(f"no point {params!r} in the table") from None
        return int(np.ravel_multi_index(where, [len(v) for v in self.values.values()]))

    def metric(self, name: str) -> np.ndarray:
        """One metric's curves, ``[point, seed, epoch]``."""
        return self.curves[..., METRICS.index(name)]

    def best(self, name: str = "val_accuracy") -> float:
        """The best seed-mean value of ``name`` at any grid point (any point and fidelity)."""
        at = np.array(self.fidelities) - 1
        return float(np.nanmax(self.metric(name)[:, :, at].astype(np.float64).mean(axis=1)))

    def content_hash(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.curves, dtype=np.float32).tobytes()).hexdigest()

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "parameters": list(self.values),
            "values": {k: list(v) for k, v in self.values.items()},
            "fidelity": {"name": FIDELITY, "values": list(self.fidelities)},
            "metrics": list(METRICS),
            "seeds": list(self.seeds),
            "axes": ["point", "seed", "epoch", "metric"],
            "content_hash": self.content_hash(),
            **self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the table to ``path`` (an ``.npz``) whole or not at all (``search.atomic``); ``TableError``
        in one line when it cannot be written (a folder, a read-only place), nothing left behind."""
        from search import atomic

        header = self.header()
        header["header_hash"] = _header_hash(header)
        try:
            with atomic.replacing(path, "wb") as f:
                np.savez_compressed(
                    f, curves=self.curves.astype(np.float32), header=np.array(json.dumps(header, indent=1))
                )
        except OSError as e:
            raise TableError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
        return Path(path)


def environment(device: str) -> dict[str, Any]:
    """What a table records about where it was built."""
    import optuna
    import torch

    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    return {"device": device, "torch": torch.__version__, "optuna": optuna.__version__, "created": created}


def load(path: str | Path) -> Table:
    """Read a table written by ``Table.save``; ``TableError`` for anything else."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"]))
            curves = np.asarray(archive["curves"])
    except FileNotFoundError:
        raise TableError(f"no table file at {str(path)!r}") from None
    except IsADirectoryError:
        raise TableError(f"{str(path)!r} is a folder, not a table file") from None
    except EOFError:  # np.load of an empty file
        raise TableError(f"{str(path)!r} is empty, not a benchmark table") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise TableError(f"{str(path)!r} is not a benchmark table (an npz with 'curves' and 'header'): {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TableError(f"{str(path)!r} is not a benchmark table: its header's format is not {FORMAT!r}")
    if header.get("version") != VERSION:
        raise TableError(
            f"{str(path)!r} is a table of format version {header.get('version')!r}; this version reads {VERSION}"
        )
    # Tables written before the header had a hash of its own carry none (the shipped one has it).
    if "header_hash" in header and header["header_hash"] != _header_hash(header):
        raise TableError(f"{str(path)!r} is damaged or edited: its header does not match its own hash")
    known = {"format", "version", "parameters", "values", "fidelity", "metrics", "seeds", "axes", "content_hash"}
    known.add("header_hash")
    try:
        table = Table(
            values={name: tuple(header["values"][name]) for name in header["parameters"]},
            fidelities=tuple(header["fidelity"]["values"]),
            seeds=tuple(header["seeds"]),
            curves=curves,
            info={k: v for k, v in header.items() if k not in known},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise TableError(f"{str(path)!r} has a damaged header or curves: {e}") from None
    if table.content_hash() != header.get("content_hash"):
        raise TableError(f"{str(path)!r} is damaged: its curves do not match the header's content hash")
    return table


def _header_hash(header: dict[str, Any]) -> str:
    """sha256 of the header without its own hash (the curves' hash is in it: one hash covers both)."""
    text = json.dumps({k: v for k, v in header.items() if k != "header_hash"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def merge(tables: list[Table]) -> Table:
    """One table of the seeds of several built on the same grid and data (seeds built apart, in parallel)."""
    first = tables[0]
    for other in tables[1:]:
        if (other.values, other.fidelities, other.info.get("data")) != (
            first.values,
            first.fidelities,
            first.info.get("data"),
        ):
            raise TableError("tables to merge must share their grid, fidelities and data")
    seeds = tuple(s for t in tables for s in t.seeds)
    if len(set(seeds)) != len(seeds):
        raise TableError(f"tables to merge must hold different seeds, but got seeds {list(seeds)}")
    curves = np.concatenate([t.curves for t in tables], axis=1)
    return Table(values=first.values, fidelities=first.fidelities, seeds=seeds, curves=curves, info=first.info)
