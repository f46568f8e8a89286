"""Physics of the PaiNN student: symmetries, gradients, extensivity, batching."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from mlff_distiller import keys, testing
from tests.conftest import perturbed_student


@pytest.mark.parametrize("name", ["CH3CH2OH", "C6H6"])
def test_rotation_translation_permutation(student64, name):
    testing.assert_invariances(student64, molecule(name), atol=1e-9)


def test_forces_are_negative_gradient_float64(student64):
    err = testing.assert_forces_are_gradient(student64, molecule("CH3CONH2"), rtol=1e-6)
    assert err < 1e-6


def test_stress_is_strain_derivative(student64):
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=1)
    testing.assert_stress_is_strain_derivative(student64, si, rtol=1e-6)


def test_triclinic_cell_forces_and_stress(student64):
    atoms = Atoms("CHON", scaled_positions=np.random.default_rng(3).uniform(size=(4, 3)),
                  cell=[[4.0, 0.0, 0.0], [1.3, 4.2, 0.0], [0.7, -0.9, 3.9]], pbc=True)
    testing.assert_forces_are_gradient(student64, atoms, rtol=1e-6)
    testing.assert_stress_is_strain_derivative(student64, atoms, rtol=1e-6)


def test_batched_equals_single(student64):
    structures = testing.small_molecules()
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=2)
    testing.assert_batch_equals_single(student64, [*structures, si], atol=1e-9)


def test_far_apart_fragments_add_up(student64):
    testing.assert_fragments_add(student64, molecule("H2O"), molecule("C6H6"), 20.0, atol=1e-9)


def test_periodic_supercell_is_extensive(student64):
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.03, seed=4)
    testing.assert_supercell_extensive(student64, si, repeat=(2, 2, 1), rtol=1e-9)


def test_single_atom_has_reference_energy(student64):
    out = testing.predict(student64, Atoms("O", positions=[[0.1, 0.2, 0.3]]))
    z_index = student64.elements.index(8)
    expected = float(student64.energy_model.element_energies[z_index])
    assert out[keys.ENERGY][0] == pytest.approx(expected, abs=1e-9)
    assert np.all(out[keys.FORCES] == 0.0)


def test_energy_depends_on_geometry():
    # Guards the tests above against a degenerate (constant) model.
    model = perturbed_student("ultra-tiny", seed=1)
    a = molecule("CH4")
    b = a.copy()
    b.positions[1] *= 1.1
    ea, eb = (testing.predict(model, s)[keys.ENERGY][0] for s in (a, b))
    assert abs(ea - eb) > 1e-4
    assert np.abs(testing.predict(model, b)[keys.FORCES]).max() > 1e-3


def test_pairs_from_cartesian_shifts_equal_integer_shifts(student64):
    """The model keeps each pair once; with Cartesian shifts (cell = identity, metatomic's
    convention) carrying round-off it keeps the same pairs as with integer shifts."""
    import torch

    from mlff_distiller.data.graph import atoms_to_graph

    si = bulk("Si", "diamond", a=5.43)  # 3.84 Å lattice vectors: atoms see their own images
    si.rattle(0.03, seed=5)
    graph = atoms_to_graph(si, student64.cutoff, dtype=torch.float64)
    assert (graph[keys.EDGE_INDEX][0] == graph[keys.EDGE_INDEX][1]).any()
    cartesian = dict(graph)
    noise = 1e-9 * torch.randn(graph[keys.EDGE_SHIFT].shape, dtype=torch.float64,
                               generator=torch.Generator().manual_seed(0))
    cartesian[keys.EDGE_SHIFT] = graph[keys.EDGE_SHIFT] @ graph[keys.CELL][0] + noise
    cartesian[keys.CELL] = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    model = student64.energy_model
    expected = model(graph).item()
    assert model(cartesian).item() == pytest.approx(expected, abs=1e-6)
