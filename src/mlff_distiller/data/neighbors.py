"""Neighbour lists (vesin) for molecules and periodic cells of any shape."""

from __future__ import annotations

import numpy as np

from mlff_distiller.errors import InputError

# below this many atoms vesin lists on one thread: its default (a thread per core) spends
# more on starting threads than it saves. benchmarks/neighbor_list_threads.py, 2 cores:
# 20-76-atom molecules 117-137 us by default against 37-56 us on one thread; 100 atoms
# equal; from 300 atoms (molecules and periodic cells) the default is 1.3-1.7x faster
THREADED_LIST_MIN_ATOMS = 200


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float,
    full_list: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """All directed pairs (i, j) with |r_j - r_i + S @ cell| < cutoff.

    Args:
        positions: (n, 3) Å.
        cell: (3, 3) Å, rows are lattice vectors (ignored along non-periodic axes).
        pbc: (3,) bool.
        cutoff: Å.
        full_list: False returns each pair once, (i, j, S) without its reverse (j, i, -S)
            (the fast inference path's pair list, ``md.fast``).

    Returns:
        edge_index (2, E) int64 with row 0 = i, row 1 = j, and edge_shift (E, 3) float64,
        integer multiples of the cell vectors.
    """
    from vesin import NeighborList

    positions = np.ascontiguousarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if len(positions) < 2:
        return np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3), dtype=np.float64)
    if pbc.any():
        volume = abs(np.linalg.det(cell))
        if not np.isfinite(volume) or volume < 1e-6:
            raise InputError(
                f"periodic structure (pbc={pbc.tolist()}) has a degenerate cell "
                f"{cell.tolist()} (volume {volume:.3g} Å^3); set a proper cell or pbc=False"
            )
        box = cell
    else:
        box = np.zeros((3, 3))
    # n_threads=0: vesin's default (OMP_NUM_THREADS, else every core)
    n_threads = 1 if len(positions) < THREADED_LIST_MIN_ATOMS else 0
    calculator = NeighborList(cutoff=float(cutoff), full_list=bool(full_list),
                              n_threads=n_threads)
    i, j, shifts = calculator.compute(
        points=positions, box=box, periodic=pbc.tolist(), quantities="ijS"
    )
    edge_index = np.stack([i.astype(np.int64), j.astype(np.int64)])
    return edge_index, shifts.astype(np.float64)
