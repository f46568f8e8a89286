"""Import labels from extxyz (MACE's ``REF_*`` keys) and export a dataset to extxyz.

Energy is ``info['REF_energy']`` (eV), forces ``arrays['REF_forces']`` (n, 3) eV/Å, stress
``info['REF_stress']`` (9 values of the 3x3 tensor, or 6 in Voigt order xx yy zz yz xz xy;
eV/Å^3, ASE sign convention). ``info['molecule_id']`` carries the molecule.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.data.schema import SPLIT_NAMES, open_dataset, read_block, read_metadata
from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path

ENERGY_KEY, FORCES_KEY, STRESS_KEY = "REF_energy", "REF_forces", "REF_stress"


def import_extxyz(
    src: str | os.PathLike,
    out_path: str | os.PathLike,
    energy_key: str = ENERGY_KEY,
    forces_key: str = FORCES_KEY,
    stress_key: str = STRESS_KEY,
    teacher: str | None = None,
) -> dict:
    """Labeled extxyz -> dataset file. Every structure needs energy and forces.

    Returns a summary (structures, atoms, with stress, content hash).
    """
    from mlff_distiller.data.labeling import molecule_ids, read_pool
    from mlff_distiller.teachers.base import Labels

    src, out = Path(src), Path(out_path)
    if out.exists():
        raise InputError(f"data import: output {out} exists; choose another --out or delete it")
    structures = read_pool(src)
    labels = []
    for k, atoms in enumerate(structures):
        where = f"{src} structure {k}"
        if energy_key not in atoms.info:
            raise InputError(f"{where}: no energy under info key {energy_key!r} (info keys: "
                             f"{sorted(atoms.info)}); pass --energy-key")
        if forces_key not in atoms.arrays:
            raise InputError(f"{where}: no forces under per-atom key {forces_key!r} (arrays: "
                             f"{sorted(atoms.arrays)}); pass --forces-key")
        forces = np.asarray(atoms.arrays[forces_key], np.float64)
        stress = atoms.info.get(stress_key)
        labels.append(Labels(energy=float(atoms.info[energy_key]), forces=forces,
                             stress=None if stress is None else _stress_3x3(stress, where)))
        if not (np.isfinite(labels[-1].energy) and np.isfinite(forces).all()):
            raise InputError(f"{where}: energy or forces are NaN/inf; fix or drop it")
    mol_ids, names = molecule_ids(structures)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    write_dataset(out, structures, labels, molecule_ids=mol_ids.tolist(), metadata={
        "teacher": teacher or f"imported:{src.name}", "teacher_version": "unknown",
        "recipe": {"imported_from": str(src), "sha256": digest,
                   "keys": [energy_key, forces_key, stress_key]},
        "molecule_names": names or {}, "job": {"imported": digest},
    })
    with open_dataset(out) as f:
        meta = read_metadata(f)
    return {"dataset": str(out), "n_structures": len(structures),
            "n_atoms": int(meta["n_atoms"]),
            "with_stress": sum(lab.stress is not None for lab in labels),
            "content_hash": meta["content_hash"]}


def _stress_3x3(value, where: str) -> np.ndarray:
    s = np.asarray(value, dtype=np.float64).reshape(-1)
    if s.size == 9:
        return s.reshape(3, 3)
    if s.size == 6:
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise InputError(f"{where}: stress has {s.size} values; expected 9 (3x3) or 6 (Voigt)")


def export_extxyz(path: str | os.PathLike, out_path: str | os.PathLike,
                  split: str | None = None, window: int = 1024) -> dict:
    """Dataset (or one split) -> extxyz with ``REF_energy`` / ``REF_forces`` / ``REF_stress``
    and ``molecule_id`` (Hessian rows are not exported). Written atomically."""
    import ase.io
    from ase import Atoms

    out = Path(out_path)
    with open_dataset(path) as f:
        n = f["structures"]["energy"].shape[0]
        keep = np.ones(n, bool)
        if split is not None:
            if split not in SPLIT_NAMES or "splits" not in f or split not in f["splits"]:
                raise InputError(f"dataset {path} has no {split!r} split; create splits with "
                                 f"`mlffd data split {path}`")
            keep = np.isin(f["structures"]["molecule_id"][:], f["splits"][split][:])
        written = 0
        with atomic_path(out) as tmp, open(tmp, "w") as fh:
            for start in range(0, n, window):
                block = read_block(f, start, min(n, start + window))
                first = 0
                frames = []
                for b in range(len(block)):
                    count = int(block.n_atoms[b])
                    atoms_slice = slice(first, first + count)
                    first += count
                    if not keep[start + b]:
                        continue
                    atoms = Atoms(numbers=block.numbers[atoms_slice],
                                  positions=block.positions[atoms_slice],
                                  cell=block.cell[b], pbc=block.pbc[b])
                    atoms.info[ENERGY_KEY] = float(block.energy[b])
                    if np.isfinite(block.stress[b]).all():
                        atoms.info[STRESS_KEY] = block.stress[b].reshape(9)
                    atoms.info["molecule_id"] = int(block.molecule_id[b])
                    atoms.arrays[FORCES_KEY] = block.forces[atoms_slice]
                    frames.append(atoms)
                if frames:
                    ase.io.write(fh, frames, format="extxyz")
                    written += len(frames)
    return {"extxyz": str(out), "n_structures": written, "split": split,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
