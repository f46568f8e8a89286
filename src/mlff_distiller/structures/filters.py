"""Reject overlapping or crushed atoms; drop near-duplicate structures of the same molecule."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial.distance import pdist


def min_pair_distance(atoms: Atoms) -> float:
    """Smallest interatomic distance in Å (minimum image for periodic cells); inf if < 2 atoms."""
    if len(atoms) < 2:
        return float("inf")
    if atoms.pbc.any():
        d = atoms.get_all_distances(mic=True)
        return float(d[np.triu_indices(len(atoms), 1)].min())
    return float(pdist(atoms.positions).min())


def min_bond_fraction(atoms: Atoms) -> float:
    """Smallest d_ij / (r_i + r_j) over atom pairs, with r ASE's covalent radii (Å), minimum
    image for periodic cells; inf if < 2 atoms. About 1 at a bond's equilibrium length."""
    if len(atoms) < 2:
        return float("inf")
    from ase.data import covalent_radii

    radii = covalent_radii[atoms.numbers]
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    fraction = d / (radii[:, None] + radii[None, :])
    return float(fraction[np.triu_indices(len(atoms), 1)].min())


class Deduplicator:
    """Remembers kept structures per molecule; a new one is a duplicate when it has the same
    atoms in the same order and every pair distance within ``tolerance`` Å of a kept one
    (invariant to rotation and translation)."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self._kept: dict[tuple[int, tuple[int, ...]], list[np.ndarray]] = {}

    def is_new(self, molecule_id: int, atoms: Atoms) -> bool:
        """True (and remember it) unless a kept structure matches within the tolerance."""
        key = (molecule_id, tuple(int(z) for z in atoms.numbers))
        distances = pdist(atoms.positions) if len(atoms) > 1 else np.zeros(0)
        kept = self._kept.setdefault(key, [])
        if self.tolerance > 0:
            for other in kept:
                if distances.size == 0 or np.abs(other - distances).max() <= self.tolerance:
                    return False
        kept.append(distances)
        return True
