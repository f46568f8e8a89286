"""Training and validation splits held in memory as per-structure graphs.

Graphs (neighbour lists included) are built once from the HDF5 dataset and batched with
:func:`mlff_distiller.data.graph.collate`; batching is by index lists, so the order of a
run is a pure function of (seed, epoch) and a resumed run replays it exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mlff_distiller import keys
from mlff_distiller.data.graph import collate
from mlff_distiller.errors import InputError


@dataclass
class GraphSet:
    """Per-structure graphs with labels (see :class:`LabeledDataset` items)."""

    graphs: list[dict[str, Tensor]]
    name: str = "train"
    content_hash: str = ""
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.graphs)

    @property
    def elements(self) -> tuple[int, ...]:
        present: set[int] = set()
        for g in self.graphs:
            present.update(int(z) for z in torch.unique(g[keys.ATOMIC_NUMBERS]).tolist())
        return tuple(sorted(present))

    def batch(self, indices: Sequence[int], device: torch.device | None = None) -> dict:
        out = collate([self.graphs[i] for i in indices])
        if device is not None and device.type != "cpu":
            out = {k: v.to(device) for k, v in out.items()}
        return out


def load_splits(
    data_path: str | os.PathLike, cutoff: float, dtype: torch.dtype, val_fraction: float,
    seed: int,
) -> tuple[GraphSet, GraphSet, dict]:
    """Train and validation graphs of the dataset at ``data_path``.

    A file without splits trains on all its structures; without a validation split, a
    deterministic ``val_fraction`` of the training structures
    (at least one) is held out; ``info["validation_source"]`` says which happened.
    """
    from mlff_distiller.data.dataset import LabeledDataset
    from mlff_distiller.data.schema import open_dataset

    with open_dataset(data_path) as f:
        has_splits = "splits" in f and "train" in f["splits"]
        has_val = has_splits and "val" in f["splits"]
    if has_splits:
        train_ds = LabeledDataset(data_path, split="train", cutoff=cutoff, dtype=dtype)
        val_ds = (LabeledDataset(data_path, split="val", cutoff=cutoff, dtype=dtype)
                  if has_val else None)
    else:  # no splits: train on everything but a held-out fraction (below)
        train_ds = LabeledDataset(data_path, split=None, cutoff=cutoff, dtype=dtype)
        val_ds = None
    info = {"dataset": str(data_path), "dataset_hash": train_ds.content_hash,
            "dataset_metadata": dict(train_ds.metadata)}
    train = [train_ds[i] for i in range(len(train_ds))]
    val = [val_ds[i] for i in range(len(val_ds))] if val_ds is not None else []
    if not train:
        raise InputError(
            f"dataset {data_path}: the training split has no structures "
            f"({len(val)} in val); label more structures or re-split the dataset"
        )
    if val:
        info["validation_source"] = "val split"
    else:
        if len(train) < 2:
            raise InputError(
                f"dataset {data_path}: 1 training structure and no val split; "
                "at least 2 structures are needed to train and validate"
            )
        n_val = max(1, int(round(val_fraction * len(train))))
        order = np.random.default_rng(seed).permutation(len(train))
        held = set(order[:n_val].tolist())
        val = [g for i, g in enumerate(train) if i in held]
        train = [g for i, g in enumerate(train) if i not in held]
        info["validation_source"] = (f"no val split: held out {n_val} of the training "
                                     "structures")
    train_set = GraphSet(train, "train", train_ds.content_hash, dict(train_ds.metadata))
    val_set = GraphSet(val, "val", train_ds.content_hash, dict(train_ds.metadata))
    check_elements(train_set, val_set, str(data_path))
    return train_set, val_set, info


def check_elements(train: GraphSet, val: GraphSet, where: str) -> None:
    """Every element of the validation split must occur in training."""
    missing = sorted(set(val.elements) - set(train.elements))
    if missing:
        from ase.data import chemical_symbols

        raise InputError(
            f"dataset {where}: element(s) {[chemical_symbols[z] for z in missing]} "
            f"(Z={missing}) occur in the validation split but not in training "
            f"(training has {[chemical_symbols[z] for z in train.elements]}); the student "
            "cannot learn them: add structures containing them to the training split"
        )
