"""Reading and writing labeled datasets: a lazy PyTorch ``Dataset`` over the HDF5 file.

``LabeledDataset`` keeps only per-structure bookkeeping (offsets, counts, molecule ids) in
memory and reads each structure's slices on demand, opening the file once per process (so
``DataLoader`` workers each get their own handle). Neighbour lists are built on the fly with
the requested cutoff.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mlff_distiller import keys
from mlff_distiller.data.graph import collate, structure_graph
from mlff_distiller.data.schema import (
    SPLIT_NAMES,
    Block,
    DatasetWriter,
    open_dataset,
    read_metadata,
)
from mlff_distiller.errors import InputError


class LabeledDataset(Dataset):
    """Structures and teacher labels of one dataset file (optionally one split of it).

    Args:
        path: the ``.h5`` file written by ``mlffd label`` / ``write_dataset``.
        split: ``None`` for every structure, or ``"train"`` / ``"val"`` / ``"test"``
            (created by ``mlffd data split``).
        cutoff: neighbour cutoff in Å for the graphs.
        dtype: float dtype of positions, labels and shifts.

    ``ds[i]`` is one structure's graph (as :func:`structure_graph` builds it) plus
    ``energy`` (1,) eV, ``forces`` (n, 3) eV/Å, ``stress`` (1, 3, 3) eV/Å^3 when every
    structure of the file has stress, ``molecule_id`` (1,), ``structure_index`` (1,) (row in
    the file), and ``hessian_row_index`` (k,) / ``hessian_rows`` (k, 3n) eV/Å^2 when stored.
    """

    def __init__(self, path: str | os.PathLike, split: str | None = None, cutoff: float = 5.0,
                 dtype: torch.dtype = torch.float32) -> None:
        self.path = Path(path)
        self.split = split
        self.cutoff = float(cutoff)
        self.dtype = dtype
        with open_dataset(self.path) as f:
            s = f["structures"]
            self.metadata = read_metadata(f)
            self.content_hash = str(self.metadata["content_hash"])
            all_molecules = s["molecule_id"][:]
            rows = np.arange(len(all_molecules))
            if split is not None:
                rows = rows[np.isin(all_molecules, self._split_ids(f, split))]
            self._rows = rows
            self._offset = s["offset"][:][rows]
            self._n_atoms = s["n_atoms"][:][rows]
            self.molecule_ids = all_molecules[rows]
            self._has_stress = "stress" in s and _all_finite_stress(s["stress"])
            # small per-structure arrays in memory (~12 bytes per structure); cells are read
            # from the file only for structures whose cell is not all zeros
            self._energy = s["energy"][:][rows]
            self._pbc = s["pbc"][:][rows]
            self._has_cell = _nonzero_cells(s["cell"])[rows]
            self._hessian = None
            if "hessian_count" in s:
                count = s["hessian_count"][:]
                row0 = np.concatenate([[0], np.cumsum(count)[:-1]])
                value0 = np.concatenate([[0], np.cumsum(count * 3 * s["n_atoms"][:])[:-1]])
                self._hessian = (count[rows], row0[rows], value0[rows])
            in_split = np.zeros(len(all_molecules), bool)
            in_split[rows] = True
            present = _elements_present(f["atoms"]["atomic_numbers"], s["n_atoms"][:], in_split)
            self.elements: tuple[int, ...] = tuple(sorted(int(z) for z in present))
        self._file = None
        self._pid = None
        self._arrays = None

    @staticmethod
    def _split_ids(f, split: str) -> np.ndarray:
        if split not in SPLIT_NAMES:
            raise InputError(f"split {split!r}: expected one of {SPLIT_NAMES} or None")
        if "splits" not in f or split not in f["splits"]:
            raise InputError(
                f"dataset {f.filename} has no {split!r} split; create the splits with "
                f"`mlffd data split {f.filename} --ratios 0.8,0.1,0.1 --seed 0`")
        return f["splits"][split][:]

    def __len__(self) -> int:
        return len(self._rows)

    def _handle(self):
        if self._file is None or self._pid != os.getpid():
            import h5py

            from mlff_distiller.data.schema import CACHE_BYTES

            self._file = h5py.File(self.path, "r", rdcc_nbytes=CACHE_BYTES)
            self._pid = os.getpid()
            f = self._file
            self._arrays = {name: f[f"atoms/{name}"] for name in
                            ("atomic_numbers", "positions", "forces")}
            for name in ("cell", "stress"):
                if name in f["structures"]:
                    self._arrays[name] = f[f"structures/{name}"]
            if "hessian" in f:
                self._arrays["row_index"] = f["hessian/row_index"]
                self._arrays["values"] = f["hessian/values"]
        return self._arrays

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        state["_arrays"] = None
        return state

    def _locate(self, i: int) -> tuple[int, int, int, int]:
        """(position in this split, file row, first atom, atom count) of structure ``i``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"structure {i} out of range for {len(self)} structures")
        i = int(i) % len(self)
        return i, int(self._rows[i]), int(self._offset[i]), int(self._n_atoms[i])

    def atoms(self, i: int):
        """Structure ``i`` as ``ase.Atoms`` (numbers, positions in Å, cell, pbc; no labels)."""
        from ase import Atoms

        i, row, first, n = self._locate(i)
        h = self._handle()
        cell = h["cell"][row] if self._has_cell[i] else np.zeros((3, 3))
        return Atoms(numbers=h["atomic_numbers"][first:first + n],
                     positions=h["positions"][first:first + n], cell=cell, pbc=self._pbc[i])

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        i, row, first, n = self._locate(i)
        h = self._handle()
        cell = h["cell"][row] if self._has_cell[i] else np.zeros((3, 3))
        graph = structure_graph(
            h["atomic_numbers"][first:first + n], h["positions"][first:first + n],
            cell, self._pbc[i], self.cutoff, dtype=self.dtype,
            name=f"{self.path.name} structure {row}",
        )
        graph[keys.ENERGY] = torch.tensor([self._energy[i]], dtype=self.dtype)
        graph[keys.FORCES] = torch.as_tensor(h["forces"][first:first + n], dtype=self.dtype)
        if self._has_stress:
            graph[keys.STRESS] = torch.as_tensor(h["stress"][row], dtype=self.dtype)[None]
        graph[keys.MOLECULE_ID] = torch.tensor([self.molecule_ids[i]], dtype=torch.long)
        graph[keys.STRUCTURE_INDEX] = torch.tensor([row], dtype=torch.long)
        if self._hessian is not None:
            count, row0, value0 = (int(x[i]) for x in self._hessian)
            index = h["row_index"][row0:row0 + count]
            values = h["values"][value0:value0 + count * 3 * n].reshape(count, 3 * n)
            graph[keys.HESSIAN_ROW_INDEX] = torch.as_tensor(index, dtype=torch.long)
            graph[keys.HESSIAN_ROWS] = torch.as_tensor(values, dtype=self.dtype)
        return graph

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._arrays = None


def _nonzero_cells(ds, window: int = 65536) -> np.ndarray:
    """(B,) bool: whether each structure's stored cell has a non-zero entry."""
    out = np.zeros(ds.shape[0], bool)
    for start in range(0, ds.shape[0], window):
        out[start:start + window] = (ds[start:start + window] != 0).any(axis=(1, 2))
    return out


def _all_finite_stress(ds) -> bool:
    for start in range(0, ds.shape[0], 65536):
        if not np.isfinite(ds[start:start + 65536]).all():
            return False
    return ds.shape[0] > 0


def _elements_present(numbers, n_atoms: np.ndarray, selected: np.ndarray,
                      window: int = 65536) -> set[int]:
    """Atomic numbers of the selected structures, streaming ``window`` structures at a time."""
    present: set[int] = set()
    first = 0
    for start in range(0, len(n_atoms), window):
        counts = n_atoms[start:start + window]
        last = first + int(counts.sum())
        chunk = numbers[first:last]
        mask = np.repeat(selected[start:start + window], counts)
        present.update(np.unique(chunk[mask]).tolist())
        first = last
    return present


def make_loader(dataset: Dataset, batch_size: int = 16, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` yielding collated flat-graph batches (``data.graph.collate``).

    Shuffling is seeded, so two loaders with the same seed yield the same batches.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:
        raise InputError("cannot make a loader over an empty dataset (or split)")
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=generator, num_workers=num_workers, drop_last=drop_last,
                      persistent_workers=num_workers > 0)


def labels_to_block(structures: Sequence, labels: Sequence, molecule_ids: Sequence[int],
                    source_index: Sequence[int]) -> Block:
    """ASE structures and their ``Labels`` as a :class:`Block` (float64)."""
    blocks = []
    for atoms, lab, mol, src in zip(structures, labels, molecule_ids, source_index, strict=True):
        n = len(atoms)
        stress = np.full((1, 3, 3), np.nan)
        if lab.stress is not None:
            stress[0] = np.asarray(lab.stress, dtype=np.float64).reshape(3, 3)
        if lab.hessian_rows is not None:
            h_index = np.asarray(lab.hessian_row_index, np.int64)
            h_values = np.asarray(lab.hessian_rows, np.float64)
            if h_values.shape != (len(h_index), 3 * n):
                raise InputError(f"structure {src}: Hessian rows of shape {h_values.shape}, "
                                 f"expected ({len(h_index)}, {3 * n})")
        else:
            h_index, h_values = np.zeros(0, np.int64), np.zeros((0, 3 * n))
        blocks.append(Block(
            numbers=np.asarray(atoms.numbers, np.uint8),
            positions=np.asarray(atoms.positions, np.float64),
            forces=np.asarray(lab.forces, np.float64).reshape(n, 3),
            energy=np.array([lab.energy], np.float64),
            cell=np.asarray(atoms.cell.array, np.float64)[None],
            pbc=np.asarray(atoms.pbc, bool)[None],
            n_atoms=np.array([n], np.int64), molecule_id=np.array([mol], np.int64),
            source_index=np.array([src], np.int64), stress=stress,
            hessian_count=np.array([len(h_index)], np.int64), hessian_index=h_index,
            hessian_values=h_values.reshape(-1),
        ))
    return Block.concatenate(blocks)


def write_dataset(path: str | os.PathLike, structures: Sequence, labels: Sequence,
                  molecule_ids: Sequence[int] | None = None,
                  metadata: dict | None = None) -> Path:
    """Write a small dataset in one call (atomically). Returns the path.

    Args:
        path: output ``.h5``; an existing file is replaced only once the new one is complete.
        structures: ``ase.Atoms``.
        labels: one ``teachers.base.Labels`` per structure.
        molecule_ids: source molecule of each structure (default: each its own molecule).
        metadata: stored as file attributes (e.g. ``teacher``, ``teacher_version``,
            ``recipe``); ``created`` is added.
    """
    from mlff_distiller.fileio import atomic_path

    if len(structures) == 0:
        raise InputError(f"write_dataset({path}): no structures given")
    if len(labels) != len(structures):
        raise InputError(f"write_dataset({path}): {len(structures)} structures but "
                         f"{len(labels)} labels")
    ids = range(len(structures)) if molecule_ids is None else molecule_ids
    block = labels_to_block(structures, labels, ids, range(len(structures)))
    meta = {"teacher": "unknown", "teacher_version": "unknown", "recipe": {},
            "created": datetime.now(UTC).isoformat(timespec="seconds"), **(metadata or {})}
    with atomic_path(path) as tmp:
        writer = DatasetWriter(tmp)
        try:
            writer.append(block)
            writer.finish(meta)
        except BaseException:
            writer.abort()
            raise
    return Path(path)


__all__ = ["LabeledDataset", "make_loader", "write_dataset", "labels_to_block"]
