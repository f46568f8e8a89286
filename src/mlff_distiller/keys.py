"""Every field name that flows between stages, spelled once, with its shape and unit.

A batch is a flat graph: a ``dict[str, Tensor]`` keyed by these constants. ``N`` is the
number of atoms in the batch, ``B`` the number of structures, ``E`` the number of directed
edges. Units are ASE's: eV, Å, fs. Each stage adds keys and never renames them.
"""

from __future__ import annotations

# --- structure (inputs) -------------------------------------------------------------
POSITIONS = "positions"  # (N, 3) float, Å
ATOMIC_NUMBERS = "atomic_numbers"  # (N,) int64
CELL = "cell"  # (B, 3, 3) float, Å; rows are lattice vectors; zeros for molecules
PBC = "pbc"  # (B, 3) bool
BATCH = "batch"  # (N,) int64, index of the structure each atom belongs to
NUM_ATOMS = "num_atoms"  # (B,) int64

# --- neighbour graph (inputs, built outside the model) -------------------------------
EDGE_INDEX = "edge_index"  # (2, E) int64; row 0 = centre atom i, row 1 = neighbour j
EDGE_SHIFT = "edge_shift"  # (E, 3) float, integer multiples of the cell vectors:
#                            r_ij = r_j - r_i + edge_shift @ cell

# --- labels / predictions ------------------------------------------------------------
ENERGY = "energy"  # (B,) float, eV
FORCES = "forces"  # (N, 3) float, eV/Å
STRESS = "stress"  # (B, 3, 3) float, eV/Å^3, ASE sign convention (1/V dE/d strain)
ATOMIC_ENERGIES = "atomic_energies"  # (N,) float, eV, per-atom energy contributions
HESSIAN_ROW_INDEX = "hessian_row_index"  # (R,) int64, flat coordinate 3 * atom + axis,
#                                          atoms numbered within the batch
HESSIAN_ROWS = "hessian_rows"  # (R, 3N) float, eV/Å^2, rows of d^2E/dx dx over the batch's
#                                coordinates (zero outside the row's own structure)

# --- bookkeeping carried alongside a batch ------------------------------------------
MOLECULE_ID = "molecule_id"  # (B,) int64, which source molecule a structure came from
STRUCTURE_INDEX = "structure_index"  # (B,) int64, row of the structure in its dataset

GRAPH_KEYS = (POSITIONS, ATOMIC_NUMBERS, CELL, PBC, BATCH, NUM_ATOMS, EDGE_INDEX, EDGE_SHIFT)
