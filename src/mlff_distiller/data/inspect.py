"""What is in a dataset: counts per element / molecule / split, label distributions.

Streams the file in windows of structures, so it works on files larger than memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mlff_distiller.data.schema import open_dataset, read_block, read_failures, read_metadata
from mlff_distiller.data.splits import summarize_splits

_PERCENTILES = (50, 90, 99, 99.9)
_BINS = 20000


def dataset_info(path: str | os.PathLike, window: int = 8192, top_molecules: int = 20) -> dict:
    """Summary of a dataset file as a JSON-ready dict.

    Keys: ``file`` (teacher, schema, hash, ...), ``counts``, ``elements`` (symbol -> atoms,
    structures), ``molecules`` (frames per molecule), ``splits``, ``energy`` and
    ``energy_per_atom`` (eV: mean, std, min, max), ``forces`` (eV/Å: component mean / std,
    |F| mean, max and percentiles), ``failures``.
    """
    from ase.data import chemical_symbols

    path = Path(path)
    with open_dataset(path) as f:
        meta = read_metadata(f)
        s = f["structures"]
        n = s["energy"].shape[0]
        energy = s["energy"][:]
        n_atoms = s["n_atoms"][:]
        molecules = s["molecule_id"][:]
        has_stress = int(np.isfinite(s["stress"][:]).all(axis=(1, 2)).sum()) if "stress" in s \
            else 0
        hessian_rows = int(s["hessian_count"][:].sum()) if "hessian_count" in s else 0
        atoms_per_z: dict[int, int] = {}
        structs_per_z: dict[int, int] = {}
        f_sum = np.zeros(3)
        f_sq = np.zeros(3)
        f_max = norm_sum = 0.0
        for start in range(0, n, window):  # pass 1: element counts, force moments, max |F|
            block = read_block(f, start, min(n, start + window))
            starts = np.concatenate([[0], np.cumsum(block.n_atoms)[:-1]])
            for z in np.unique(block.numbers).tolist():
                mask = block.numbers == z
                atoms_per_z[z] = atoms_per_z.get(z, 0) + int(mask.sum())
                per_struct = np.add.reduceat(mask.astype(np.int64), starts) if len(starts) else []
                structs_per_z[z] = structs_per_z.get(z, 0) + int((np.asarray(per_struct) > 0)
                                                                   .sum())
            f_sum += block.forces.sum(axis=0)
            f_sq += (block.forces**2).sum(axis=0)
            norm_sum += float(np.linalg.norm(block.forces, axis=1).sum())
            if len(block.forces):
                f_max = max(f_max, float(np.linalg.norm(block.forces, axis=1).max()))
        hist = np.zeros(_BINS, np.int64)
        edges = np.linspace(0.0, f_max if f_max > 0 else 1.0, _BINS + 1)
        for start in range(0, n, window):  # pass 2: histogram of |F| for percentiles
            block = read_block(f, start, min(n, start + window))
            hist += np.histogram(np.linalg.norm(block.forces, axis=1), bins=edges)[0]
        failures = read_failures(f)
    total_atoms = int(n_atoms.sum())
    mean = f_sum / max(total_atoms, 1)
    std = np.sqrt(np.maximum(f_sq / max(total_atoms, 1) - mean**2, 0.0))
    mol_ids, frames = np.unique(molecules, return_counts=True)
    names = {int(k): v for k, v in (meta.get("molecule_names") or {}).items()}
    biggest = np.argsort(-frames, kind="stable")[:top_molecules]
    per_atom = energy / np.maximum(n_atoms, 1)
    return {
        "file": {"path": str(path), "teacher": meta.get("teacher"),
                 "teacher_version": meta.get("teacher_version"),
                 "schema_version": meta.get("schema_version"), "created": meta.get("created"),
                 "units": meta.get("units"), "content_hash": meta.get("content_hash"),
                 "recipe": meta.get("recipe")},
        "counts": {"structures": int(n), "atoms": total_atoms,
                   "molecules": int(len(mol_ids)), "with_stress": has_stress,
                   "hessian_rows": hessian_rows, "failed": len(failures),
                   "atoms_per_structure": _stats(n_atoms)},
        "elements": {chemical_symbols[z]: {"Z": z, "atoms": atoms_per_z[z],
                                           "structures": structs_per_z[z]}
                     for z in sorted(atoms_per_z)},
        "molecules": {"frames_per_molecule": _stats(frames),
                      "largest": [{"id": int(mol_ids[k]), "name": names.get(int(mol_ids[k])),
                                   "frames": int(frames[k])} for k in biggest]},
        "splits": summarize_splits(path),
        "energy": _stats(energy),
        "energy_per_atom": _stats(per_atom),
        "forces": {"component_mean": mean.tolist(), "component_std": std.tolist(),
                   "norm_max": f_max,
                   "norm_mean": norm_sum / max(total_atoms, 1),
                   "norm_percentiles": {str(p): float(_hist_percentile(hist, edges, p))
                                        for p in _PERCENTILES}},
        "failures": [{"index": i, "reason": r} for i, r in failures[:20]],
    }


def _stats(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
            "max": float(x.max())}


def _hist_percentile(hist: np.ndarray, edges: np.ndarray, p: float) -> float:
    """Upper edge of the bin holding the p-th percentile (error < one bin, max/20000)."""
    if hist.sum() == 0:
        return 0.0
    cumulative = np.cumsum(hist)
    k = int(np.searchsorted(cumulative, p / 100.0 * cumulative[-1]))
    return float(edges[min(k + 1, len(edges) - 1)])
