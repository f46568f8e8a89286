"""GFN2-xTB via tblite for real on small molecules."""

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

pytest.importorskip("tblite", reason="xTB teacher needs the [xtb] extra")


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("xtb")


@pytest.fixture
def ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.03, seed=1)
    return atoms


def test_energy_in_ev(teacher):
    # GFN2-xTB water is about -5.07 Hartree = -138 eV (tblite's documented value)
    energy = labels_of(teacher, molecule("H2O")).energy
    assert energy == pytest.approx(-137.9678, abs=1e-2)
    assert teacher.name == "xtb:GFN2-xTB" and teacher.version != "unknown"


def test_forces_are_gradient(teacher, ethanol):
    assert_forces_are_gradient(teacher, ethanol, [(0, 0), (3, 1), (8, 2)], delta=1e-3,
                               atol=1e-4)


def test_rotation_equivariance(teacher, ethanol):
    assert_rotation_equivariant(teacher, ethanol, e_atol=1e-6, f_atol=1e-4)


def test_hessian_rows_by_finite_differences(teacher, ethanol):
    assert_hessian_rows_match_forces(teacher, ethanol, rows=2, delta=5e-3, atol=5e-2)


def test_labels_independent_of_order(teacher, ethanol):
    water = molecule("H2O")
    forward = teacher.label([water, ethanol])
    backward = teacher.label([ethanol, water])
    assert forward[1].energy == backward[0].energy
    assert np.array_equal(forward[0].forces, backward[1].forces)


def test_failures_recorded_and_unsupported_refused(teacher, ethanol):
    bad = ethanol.copy()
    bad.positions[2] = np.nan
    results = teacher.label([bad, ethanol])
    assert isinstance(results[0], LabelFailure)
    assert isinstance(results[1], Labels)
    with pytest.raises(InputError, match="U"):
        teacher.check_elements([Atoms("UH", positions=[[0, 0, 0], [0, 0, 2.0]])])
