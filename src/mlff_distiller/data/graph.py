"""Structures -> the flat graph batch that flows between stages.

``structure_graph`` builds one structure's graph (numpy arrays in, tensors out) and
``collate`` concatenates graphs into a batch, offsetting edge indices and ``batch``.
``atoms_to_graph`` does both for ASE ``Atoms`` (ASE appears only at the edges).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mlff_distiller import keys
from mlff_distiller.data.neighbors import neighbor_list
from mlff_distiller.errors import InputError

_PER_ATOM = (keys.POSITIONS, keys.ATOMIC_NUMBERS, keys.FORCES, keys.ATOMIC_ENERGIES)
_PER_STRUCTURE = (keys.CELL, keys.PBC, keys.NUM_ATOMS, keys.ENERGY, keys.STRESS,
                  keys.MOLECULE_ID, keys.STRUCTURE_INDEX)


def validate_structure(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None,
    name: str = "structure",
    elements: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes, finiteness and elements; return (numbers, positions, cell, pbc).

    Raises :class:`InputError` naming ``name`` and the problem.
    """
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, dtype=np.float64)
    if numbers.ndim != 1:
        raise InputError(f"{name}: atomic numbers must have shape (n,), got {numbers.shape}")
    n = numbers.shape[0]
    if n == 0:
        raise InputError(f"{name}: has zero atoms; remove it from the input")
    if positions.shape != (n, 3):
        raise InputError(
            f"{name}: positions must have shape ({n}, 3) to match {n} atomic numbers, "
            f"got {positions.shape}"
        )
    if not np.all(np.isfinite(positions)):
        bad = np.unique(np.nonzero(~np.isfinite(positions))[0])
        raise InputError(
            f"{name}: positions contain NaN or inf at atom(s) {bad[:10].tolist()}; "
            "fix or drop this structure"
        )
    if not np.issubdtype(numbers.dtype, np.integer):
        if not np.all(np.equal(np.mod(numbers, 1), 0)):
            raise InputError(f"{name}: atomic numbers must be integers, got {numbers[:5]}")
    numbers = numbers.astype(np.int64)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    if cell.shape != (3, 3):
        raise InputError(f"{name}: cell must have shape (3, 3), got {cell.shape}")
    if not np.all(np.isfinite(cell)):
        raise InputError(f"{name}: cell contains NaN or inf")
    pbc = np.zeros(3, dtype=bool) if pbc is None else np.broadcast_to(np.asarray(pbc, bool), 3)
    if elements is not None:
        unknown = sorted(set(numbers.tolist()) - set(int(z) for z in elements))
        if unknown:
            from ase.data import chemical_symbols

            names = [chemical_symbols[z] if 0 < z < len(chemical_symbols) else str(z)
                     for z in unknown]
            raise InputError(
                f"{name}: element(s) {names} (Z={unknown}) are not among the model's elements "
                f"{[chemical_symbols[z] for z in elements]}; use a student trained on them"
            )
    return numbers, positions, cell, pbc.copy()


def structure_graph(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: np.ndarray | None,
    cutoff: float,
    dtype: torch.dtype = torch.float32,
    name: str = "structure",
    elements: Sequence[int] | None = None,
) -> dict[str, Tensor]:
    """One structure as a graph dict with batch index 0 (see :mod:`keys` for shapes)."""
    numbers, positions, cell, pbc = validate_structure(
        numbers, positions, cell, pbc, name=name, elements=elements
    )
    edge_index, edge_shift = neighbor_list(positions, cell, pbc, cutoff)
    n = len(numbers)
    return {
        keys.POSITIONS: torch.as_tensor(positions, dtype=dtype),
        keys.ATOMIC_NUMBERS: torch.as_tensor(numbers, dtype=torch.long),
        keys.CELL: torch.as_tensor(cell, dtype=dtype).unsqueeze(0),
        keys.PBC: torch.as_tensor(pbc, dtype=torch.bool).unsqueeze(0),
        keys.BATCH: torch.zeros(n, dtype=torch.long),
        keys.NUM_ATOMS: torch.tensor([n], dtype=torch.long),
        keys.EDGE_INDEX: torch.as_tensor(edge_index, dtype=torch.long),
        keys.EDGE_SHIFT: torch.as_tensor(edge_shift, dtype=dtype),
    }


def collate(graphs: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate single- or multi-structure graphs into one flat batch.

    Per-atom and per-structure arrays are concatenated; ``edge_index`` is offset by the
    atoms before it and ``batch`` by the structures before it. Keys present in only some
    graphs are an error (a batch must be uniform).
    """
    if not graphs:
        raise InputError("cannot collate an empty list of structures")
    names = set(graphs[0])
    for g in graphs[1:]:
        if set(g) != names:
            raise InputError(
                f"cannot batch structures with different fields: {sorted(names ^ set(g))}"
            )
    out: dict[str, Tensor] = {}
    atom_offsets, structure_offsets = [], []
    n_atoms = n_structures = 0
    for g in graphs:
        atom_offsets.append(n_atoms)
        structure_offsets.append(n_structures)
        n_atoms += g[keys.POSITIONS].shape[0]
        n_structures += g[keys.CELL].shape[0]
    for name in names:
        parts = [g[name] for g in graphs]
        if name == keys.EDGE_INDEX:
            parts = [p + off for p, off in zip(parts, atom_offsets, strict=True)]
            out[name] = torch.cat(parts, dim=1)
        elif name == keys.BATCH:
            shifted = zip(parts, structure_offsets, strict=True)
            out[name] = torch.cat([p + off for p, off in shifted])
        elif name == keys.HESSIAN_ROW_INDEX:
            out[name] = torch.cat([p + 3 * off for p, off in zip(parts, atom_offsets, strict=True)])
        elif name == keys.HESSIAN_ROWS:
            out[name] = _pad_hessian_rows(parts, atom_offsets, n_atoms)
        else:
            out[name] = torch.cat(parts, dim=0)
    return out


def _pad_hessian_rows(parts: Sequence[Tensor], atom_offsets: Sequence[int],
                      n_atoms: int) -> Tensor:
    """Place each graph's (k, 3n) Hessian rows at its own columns of (R, 3N) rows."""
    rows = parts[0].new_zeros((sum(p.shape[0] for p in parts), 3 * n_atoms))
    r = 0
    for p, off in zip(parts, atom_offsets, strict=True):
        rows[r:r + p.shape[0], 3 * off:3 * off + p.shape[1]] = p
        r += p.shape[0]
    return rows


def atoms_to_graph(
    structures, cutoff: float, dtype: torch.dtype = torch.float32,
    elements: Sequence[int] | None = None,
) -> dict[str, Tensor]:
    """ASE ``Atoms`` (one or a list) -> a flat graph batch.

    Args:
        structures: an ``ase.Atoms`` or a sequence of them.
        cutoff: neighbour cutoff in Å (the model's).
        dtype: float dtype of positions, cell and shifts.
        elements: when given, atomic numbers outside it are an error naming them.
    """
    from ase import Atoms

    if isinstance(structures, Atoms):
        structures = [structures]
    if len(structures) == 0:
        raise InputError("no structures given: expected at least one ase.Atoms")
    graphs = []
    for k, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms):
            raise InputError(f"structure {k}: expected ase.Atoms, got {type(atoms).__name__}")
        name = f"structure {k} ({atoms.get_chemical_formula() or 'empty'})"
        graphs.append(
            structure_graph(
                atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, cutoff,
                dtype=dtype, name=name, elements=elements,
            )
        )
    return graphs[0] if len(graphs) == 1 else collate(graphs)
