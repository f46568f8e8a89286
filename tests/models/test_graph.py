"""Graph building: shapes, wrong-shaped arrays, degenerate cells."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from mlff_distiller import InputError, keys
from mlff_distiller.data.graph import atoms_to_graph, structure_graph


def test_batch_keys_and_shapes():
    graph = atoms_to_graph([molecule("H2O"), molecule("CH4")], cutoff=5.0)
    assert graph[keys.POSITIONS].shape == (8, 3)
    assert graph[keys.CELL].shape == (2, 3, 3)
    assert graph[keys.BATCH].tolist() == [0] * 3 + [1] * 5
    assert graph[keys.EDGE_INDEX].shape[0] == 2
    assert graph[keys.EDGE_INDEX].shape[1] == 3 * 2 + 5 * 4  # all pairs within 5 Å
    # edges never cross structures
    src, dst = graph[keys.EDGE_INDEX]
    assert (graph[keys.BATCH][src] == graph[keys.BATCH][dst]).all()


@pytest.mark.parametrize(
    "numbers, positions, match",
    [
        ([1, 1], np.zeros((3, 3)), r"shape \(2, 3\)"),
        ([[1, 1]], np.zeros((2, 3)), r"shape \(n,\)"),
        ([1, 1], np.zeros((2, 2)), r"shape \(2, 3\)"),
        ([1.5, 1], np.zeros((2, 3)), "integers"),
        ([], np.zeros((0, 3)), "zero atoms"),
        ([1, 8], [[0, 0, 0], [np.inf, 0, 0]], "NaN or inf"),
    ],
)
def test_wrong_arrays_are_named(numbers, positions, match):
    with pytest.raises(InputError, match=match):
        structure_graph(numbers, positions, None, None, cutoff=5.0, name="input.xyz#3")


def test_degenerate_periodic_cell():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], pbc=True)
    with pytest.raises(InputError, match="degenerate cell"):
        atoms_to_graph(atoms, cutoff=5.0)
