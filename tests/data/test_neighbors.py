"""neighbor_list (vesin) against ASE's reference implementation, on both sides of the size
from which vesin lists on several threads."""

import numpy as np
import pytest
from ase.neighborlist import primitive_neighbor_list

from mlff_distiller.data import neighbors
from mlff_distiller.data.neighbors import THREADED_LIST_MIN_ATOMS, neighbor_list


def _pair_set(i, j, shift) -> set:
    return set(zip(np.asarray(i).tolist(), np.asarray(j).tolist(),
                   map(tuple, np.rint(shift).astype(int).tolist()), strict=True))


@pytest.mark.parametrize("n_atoms, periodic", [(20, False), (THREADED_LIST_MIN_ATOMS + 50, True),
                                                (THREADED_LIST_MIN_ATOMS + 50, False)])
def test_neighbor_list_equals_ase(n_atoms, periodic):
    rng = np.random.default_rng(n_atoms)
    side = (n_atoms / 0.1) ** (1 / 3)  # liquid-like density, 0.1 atoms per Å^3
    positions = rng.uniform(0, side, (n_atoms, 3))
    cell = np.eye(3) * side if periodic else np.zeros((3, 3))
    pbc = np.full(3, periodic)
    index, shift = neighbor_list(positions, cell, pbc, 4.5)
    i, j, ase_shift = primitive_neighbor_list("ijS", pbc, cell, positions, 4.5,
                                              self_interaction=False)
    assert index.shape[1] == len(i) > 10 * n_atoms
    assert _pair_set(*index, shift) == _pair_set(i, j, ase_shift)
    half, half_shift = neighbor_list(positions, cell, pbc, 4.5, full_list=False)
    assert 2 * half.shape[1] == index.shape[1]


def test_small_structures_are_listed_on_one_thread(monkeypatch):
    """vesin's default starts a thread per core for every list: 2-4x slower than one thread
    on 20-76-atom molecules (README, Benchmarks)."""
    import vesin

    seen = []

    class Spy(vesin.NeighborList):
        def __init__(self, **kwargs):
            seen.append(kwargs.get("n_threads"))
            super().__init__(**kwargs)

    monkeypatch.setattr(vesin, "NeighborList", Spy)
    rng = np.random.default_rng(0)
    for n_atoms in (20, THREADED_LIST_MIN_ATOMS):
        neighbors.neighbor_list(rng.uniform(0, 10, (n_atoms, 3)), np.zeros((3, 3)),
                                np.zeros(3, bool), 4.0)
    assert seen == [1, 0]  # 0: vesin's default, OMP_NUM_THREADS or every core
