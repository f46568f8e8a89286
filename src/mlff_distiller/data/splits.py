"""Train / val / test splits by molecule, never by frame, stored inside the dataset file.

Frames of one molecule (conformers, rattles, MD snapshots) are correlated; a molecule's
frames therefore all land in one split. Splits are stored as molecule-id arrays under
``/splits/{train,val,test}``. The file is updated by copying it, editing the copy and renaming
it over the original, so an interrupted split never damages the dataset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlff_distiller.data.schema import SPLIT_NAMES, open_dataset
from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path


def assign_by_ratio(molecules: np.ndarray, ratios: Sequence[float], seed: int
                    ) -> dict[str, np.ndarray]:
    """Shuffle the unique molecule ids (seeded) and cut them by ``ratios`` (train, val, test).

    Every split with a positive ratio gets at least one molecule.
    """
    ratios = np.asarray(ratios, dtype=float)
    if ratios.shape != (3,) or (ratios < 0).any() or not np.isclose(ratios.sum(), 1.0):
        raise InputError(f"--ratios {ratios.tolist()}: expected three non-negative numbers "
                         "summing to 1 (train, val, test), e.g. 0.8,0.1,0.1")
    unique = np.unique(molecules)
    needed = int((ratios > 0).sum())
    if len(unique) < needed:
        raise InputError(
            f"the dataset has {len(unique)} molecule(s) but {needed} non-empty splits were "
            "requested; splits are by molecule (frames of one molecule are correlated), so "
            "label more molecules or give explicit --train-ids/--val-ids/--test-ids")
    order = np.random.default_rng(seed).permutation(unique)
    counts = np.floor(ratios * len(unique)).astype(int)
    counts[(ratios > 0) & (counts == 0)] = 1
    while counts.sum() > len(unique):  # too many after the minimum of one: shrink the largest
        counts[np.argmax(counts)] -= 1
    counts[int(np.argmax(ratios))] += len(unique) - counts.sum()  # remainder to the largest
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {name: np.sort(order[bounds[k]:bounds[k + 1]]) for k, name in enumerate(SPLIT_NAMES)}


def split_dataset(
    path: str | os.PathLike,
    ratios: Sequence[float] | None = (0.8, 0.1, 0.1),
    seed: int = 0,
    train_ids: Sequence[int] | None = None,
    val_ids: Sequence[int] | None = None,
    test_ids: Sequence[int] | None = None,
    overwrite: bool = False,
) -> dict:
    """Create train/val/test splits by molecule and store them in the dataset file.

    Either ``ratios`` (seeded shuffle of molecule ids) or explicit id lists (molecules not
    listed belong to no split). Returns per-split molecule / structure counts.
    """
    path = Path(path)
    explicit = [train_ids, val_ids, test_ids]
    with open_dataset(path) as f:
        molecules = f["structures"]["molecule_id"][:]
        if "splits" in f and not overwrite:
            raise InputError(f"dataset {path} already has splits; pass --overwrite to replace "
                             "them (models trained on the old split are then not comparable)")
    if any(ids is not None for ids in explicit):
        assignment = _explicit(molecules, explicit, path)
        method = {"method": "explicit"}
    else:
        if ratios is None:
            raise InputError("give --ratios or explicit --train-ids/--val-ids/--test-ids")
        assignment = assign_by_ratio(molecules, ratios, seed)
        method = {"method": "ratio", "seed": int(seed), "ratios": [float(r) for r in ratios]}
    import h5py

    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as f:
            if "splits" in f:
                del f["splits"]
            group = f.create_group("splits")
            for name, ids in assignment.items():
                group.create_dataset(name, data=np.asarray(ids, np.int64))
            for key, value in method.items():
                group.attrs[key] = value
    return summarize_splits(path)


def summarize_splits(path: str | os.PathLike) -> dict:
    """Molecules, structures and atoms per split (empty dict when the file has none)."""
    with open_dataset(path) as f:
        if "splits" not in f:
            return {}
        molecules = f["structures"]["molecule_id"][:]
        n_atoms = f["structures"]["n_atoms"][:]
        out = {}
        for name in SPLIT_NAMES:
            ids = f["splits"][name][:] if name in f["splits"] else np.zeros(0, np.int64)
            mask = np.isin(molecules, ids)
            out[name] = {"molecules": int(len(ids)), "structures": int(mask.sum()),
                         "atoms": int(n_atoms[mask].sum())}
        out["method"] = {k: (v.tolist() if hasattr(v, "tolist") else v)
                         for k, v in f["splits"].attrs.items()}
        return out


def _explicit(molecules: np.ndarray, lists: list, path: Path) -> dict[str, np.ndarray]:
    present = set(np.unique(molecules).tolist())
    seen: dict[int, str] = {}
    out = {}
    for name, ids in zip(SPLIT_NAMES, lists, strict=True):
        ids = sorted({int(i) for i in (ids or [])})
        missing = [i for i in ids if i not in present]
        if missing:
            raise InputError(f"--{name}-ids: molecule id(s) {missing[:10]} are not in {path} "
                             f"(it has {len(present)} molecules; see `mlffd data info`)")
        for i in ids:
            if i in seen:
                raise InputError(f"molecule {i} is listed in both {seen[i]} and {name}; a "
                                 "molecule belongs to one split only")
            seen[i] = name
        out[name] = np.asarray(ids, np.int64)
    return out
