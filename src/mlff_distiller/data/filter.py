"""Drop structures from a labeled dataset: crushed geometries and label outliers."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mlff_distiller.data.labeling import progress_bar
from mlff_distiller.data.schema import (
    DatasetWriter,
    open_dataset,
    read_block,
    read_failures,
    read_metadata,
)
from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path


def filter_dataset(path: str | os.PathLike, out_path: str | os.PathLike,
                   min_bond_fraction: float | None = None, max_force: float | None = None,
                   window: int = 4096, progress: bool = True) -> dict:
    """Copy ``path`` to ``out_path`` (written atomically) without the structures that fail a
    criterion; the teacher, molecule ids and names, failures and splits are kept.

    Args:
        min_bond_fraction: drop a structure whose closest pair is nearer than this fraction of
            the sum of the two covalent radii (ASE's; 1 = a bond's equilibrium length), as
            ``mlffd generate`` does before labeling. None = no check.
        max_force: drop a structure with any force component magnitude above this (eV/Å),
            e.g. a teacher's outlier. None = no check.
        progress: show a progress bar (structures checked).

    Returns a summary: structures kept and dropped, the count per reason, and every dropped
    structure (``source_index``, ``molecule_id``, reason).
    """
    src, out = Path(path), Path(out_path)
    if min_bond_fraction is None and max_force is None:
        raise InputError("data filter: give at least one criterion (--min-bond-fraction "
                         "and/or --max-force)")
    if min_bond_fraction is not None and not 0 < min_bond_fraction < 1:
        raise InputError(f"data filter: --min-bond-fraction must be in (0, 1) (a fraction of "
                         f"the covalent bond length), got {min_bond_fraction}")
    if max_force is not None and not max_force > 0:
        raise InputError(f"data filter: --max-force must be > 0 eV/Å, got {max_force}")
    if out.resolve() == src.resolve():
        raise InputError("data filter: --out must differ from the input file")
    if out.exists():
        raise InputError(f"data filter: output {out} exists; choose another --out or delete it")
    criteria = {"min_bond_fraction": min_bond_fraction, "max_force": max_force}
    dropped: list[dict] = []
    with open_dataset(src) as f:
        meta = read_metadata(f)
        n = f["structures"]["energy"].shape[0]
        splits = ({name: f["splits"][name][:] for name in f["splits"]},
                  dict(f["splits"].attrs)) if "splits" in f else None
        with atomic_path(out) as tmp:
            writer = DatasetWriter(tmp)
            try:
                with progress_bar(progress, n, f"filtering {src.name}") as advance:
                    for start in range(0, n, window):
                        block = read_block(f, start, min(n, start + window))
                        reasons = _reasons(block, min_bond_fraction, max_force)
                        keep = np.array([r is None for r in reasons], bool)
                        for k in np.flatnonzero(~keep):
                            dropped.append({"source_index": int(block.source_index[k]),
                                            "molecule_id": int(block.molecule_id[k]),
                                            "reason": reasons[k]})
                        writer.append(select_structures(block, keep))
                        advance(len(block))
                failures = read_failures(f)
                writer.add_failures([i for i, _ in failures], [r for _, r in failures])
                if len(dropped) == n:
                    raise InputError(f"data filter: every one of the {n} structures of {src} "
                                     f"failed the criteria {criteria}; loosen them")
                if splits is not None:
                    _write_splits(writer, splits)
                # the writer sets the file's own attributes (hash, counts, format, units)
                content_hash = writer.finish({
                    **meta, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "recipe": {"filtered_from": {"file": str(src),
                                                 "content_hash": meta.get("content_hash"),
                                                 "recipe": meta.get("recipe", {})},
                               "criteria": criteria}})
            except BaseException:
                writer.abort()
                raise
    return {"dataset": str(out), "input": str(src), "criteria": criteria,
            "n_structures": n - len(dropped), "dropped": len(dropped),
            "dropped_by_reason": dict(Counter(d["reason"].split(" ")[0] for d in dropped)),
            "dropped_structures": dropped, "content_hash": content_hash}


def select_structures(block, keep: np.ndarray):
    """The structures of ``block`` where ``keep`` (B,) is True, with their atoms and
    Hessian rows."""
    from dataclasses import replace

    keep = np.asarray(keep, bool)
    atom_keep = np.repeat(keep, block.n_atoms)
    row_keep = np.repeat(keep, block.hessian_count)
    value_keep = np.repeat(keep, block.hessian_count * 3 * block.n_atoms)
    return replace(
        block, numbers=block.numbers[atom_keep], positions=block.positions[atom_keep],
        forces=block.forces[atom_keep], energy=block.energy[keep], cell=block.cell[keep],
        pbc=block.pbc[keep], n_atoms=block.n_atoms[keep], molecule_id=block.molecule_id[keep],
        source_index=block.source_index[keep], stress=block.stress[keep],
        hessian_count=block.hessian_count[keep], hessian_index=block.hessian_index[row_keep],
        hessian_values=block.hessian_values[value_keep])


def _reasons(block, min_bond_fraction, max_force) -> list[str | None]:
    """Per structure of ``block``: None (kept) or why it is dropped."""
    from ase import Atoms

    from mlff_distiller.structures.filters import min_bond_fraction as bond_fraction

    ends = np.cumsum(block.n_atoms)
    out: list[str | None] = []
    for k, stop in enumerate(ends):
        start = stop - block.n_atoms[k]
        reason = None
        if min_bond_fraction is not None:
            atoms = Atoms(numbers=block.numbers[start:stop],
                          positions=block.positions[start:stop], cell=block.cell[k],
                          pbc=block.pbc[k])
            fraction = bond_fraction(atoms)
            if fraction < min_bond_fraction:
                reason = f"min_bond_fraction {fraction:.3f} < {min_bond_fraction}"
        if reason is None and max_force is not None:
            worst = float(np.abs(block.forces[start:stop]).max()) if stop > start else 0.0
            if not worst <= max_force:  # NaN fails too
                reason = f"max_force {worst:.4g} eV/Å > {max_force}"
        out.append(reason)
    return out


def _write_splits(writer: DatasetWriter, splits) -> None:
    """Carry the input's splits over (ids of molecules with no structure left are dropped)."""
    ids, attrs = splits
    present = set()
    if "molecule_id" in writer.file["structures"]:
        present = set(np.unique(writer.file["structures"]["molecule_id"][:]).tolist())
    group = writer.file.create_group("splits")
    for name, values in ids.items():
        group.create_dataset(name, data=np.asarray(
            [i for i in values.tolist() if i in present], np.int64))
    for key, value in attrs.items():
        group.attrs[key] = value
