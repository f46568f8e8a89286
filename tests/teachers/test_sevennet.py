"""SevenNet-0 for real (weights ship in the sevenn wheel; float32 model)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from mlff_distiller.errors import InputError
from mlff_distiller.teachers import LabelFailure, Labels, load_teacher

from .helpers import (
    assert_forces_are_gradient,
    assert_hessian_rows_match_forces,
    assert_rotation_equivariant,
    labels_of,
)

pytest.importorskip("sevenn", reason="SevenNet teacher needs the [sevennet] extra")


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("sevennet")


@pytest.fixture
def ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.03, seed=0)
    return atoms


def test_identity_and_elements(teacher):
    assert teacher.name == "sevennet:7net-0"
    assert teacher.version != "unknown"
    assert {1, 6, 7, 8, 9, 16, 17} <= teacher.supported_elements
    assert 118 not in teacher.supported_elements  # Og is not in SevenNet-0's type map


def test_energy_finite_and_forces_are_gradient(teacher, ethanol):
    labels = labels_of(teacher, ethanol)
    assert np.isfinite(labels.energy) and labels.energy < 0
    assert labels.forces.shape == (9, 3) and labels.stress is None
    assert np.abs(labels.forces.sum(0)).max() < 1e-3  # no net force on an isolated molecule
    assert_forces_are_gradient(teacher, ethanol, [(0, 0), (2, 1), (8, 2)], delta=5e-3,
                               atol=5e-3)


def test_rotation_equivariance(teacher, ethanol):
    assert_rotation_equivariant(teacher, ethanol, e_atol=1e-4, f_atol=1e-4)


def test_hessian_rows_by_autograd_match_finite_differences(teacher, ethanol):
    assert_hessian_rows_match_forces(teacher, ethanol, rows=2, delta=2e-3, atol=5e-2)


def test_periodic_structure_gets_stress(teacher):
    from ase.build import bulk

    labels = labels_of(teacher, bulk("Si", "diamond", 5.43))
    assert labels.stress.shape == (3, 3)
    assert np.allclose(labels.stress, labels.stress.T, atol=1e-6)


def test_failures_are_recorded_not_raised(teacher, ethanol):
    bad = ethanol.copy()
    bad.positions[0] = np.nan
    results = teacher.label([bad, ethanol])
    assert isinstance(results[0], LabelFailure) and results[0].reason
    assert isinstance(results[1], Labels)
    unknown = Atoms("OgH", positions=[[0, 0, 0], [0, 0, 1.5]])
    assert isinstance(teacher.label([unknown])[0], LabelFailure)


def test_unsupported_elements_refused_before_labeling(teacher, ethanol):
    unknown = Atoms("OgH", positions=[[0, 0, 0], [0, 0, 1.5]])
    with pytest.raises(InputError, match="Og"):
        teacher.check_elements([ethanol, unknown])
    teacher.check_elements([ethanol])
