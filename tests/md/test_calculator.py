"""The ASE calculator follows ASE's contract and equals the model."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError

from mlff_distiller import InputError, StudentCalculator, save_student, testing
from tests.conftest import perturbed_student


def test_calculator_equals_model_molecule_and_crystal(student64):
    calc = StudentCalculator(student64)
    testing.assert_calculator_matches_model(calc, student64, molecule("CH3CH2OH"), atol=1e-9)
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=0)
    testing.assert_calculator_matches_model(calc, student64, si, atol=1e-9)


def test_calculator_from_path_and_free_energy(tmp_path):
    model = perturbed_student("ultra-tiny")
    path = save_student(model, tmp_path / "s.safetensors")
    atoms = molecule("H2O")
    atoms.calc = StudentCalculator(path)
    assert atoms.get_potential_energy() == pytest.approx(
        atoms.get_potential_energy(force_consistent=True))
    assert atoms.get_forces().shape == (3, 3)


def test_stress_voigt_and_molecule_has_none(student64):
    si = bulk("Si", "diamond", a=5.43)
    si.calc = StudentCalculator(student64)
    assert si.get_stress().shape == (6,)
    water = molecule("H2O")
    water.calc = StudentCalculator(student64)
    with pytest.raises(PropertyNotImplementedError):
        water.get_stress()


def test_calculator_recomputes_after_moving_atoms(student64):
    atoms = molecule("CH4")
    atoms.calc = StudentCalculator(student64)
    e0 = atoms.get_potential_energy()
    atoms.positions[1] += [0.1, 0.0, 0.0]
    assert atoms.get_potential_energy() != e0


def test_direct_calculate_calls_follow_the_atoms_given(student64):
    """calculate(atoms) called directly (not through get_property) keeps its own copy of
    the atoms it was given and computes for them, even after the caller moves them."""
    from ase.calculators.calculator import all_changes

    calc = StudentCalculator(student64)
    atoms = molecule("CH3OH")
    calc.calculate(atoms, ["energy", "forces"], all_changes)
    first = calc.results["forces"].copy()
    assert calc.atoms is not atoms and np.array_equal(calc.atoms.positions, atoms.positions)
    atoms.positions[0] += [0.05, 0.0, 0.0]
    calc.calculate(atoms, ["energy", "forces"], all_changes)
    assert np.array_equal(calc.atoms.positions, atoms.positions)
    assert not np.allclose(calc.results["forces"], first)
    fresh = molecule("CH3OH")
    fresh.positions[:] = atoms.positions
    fresh.calc = StudentCalculator(student64)
    np.testing.assert_allclose(calc.results["forces"], fresh.get_forces(), atol=1e-10)


def test_md_steps_update_the_calculators_record_in_place(student64):
    """Between MD steps only the positions change: the calculator's copy of the atoms
    (calc.atoms) is updated in place, and any other change makes a new copy; results always
    equal a fresh calculator's."""
    atoms = molecule("CH3OH")
    atoms.calc = calc = StudentCalculator(student64)
    atoms.get_forces()
    record = calc.atoms
    for k in range(3):
        atoms.positions[k] += [0.02, -0.01, 0.0]
        forces = atoms.get_forces()
        assert calc.atoms is record and record is not atoms
        assert np.array_equal(record.positions, atoms.positions)
        fresh = atoms.copy()
        fresh.calc = StudentCalculator(student64)
        np.testing.assert_allclose(forces, fresh.get_forces(), atol=1e-10)
    atoms.numbers[1] = 7  # a new element: a new copy, not an in-place update
    atoms.get_forces()
    assert calc.atoms is not record and calc.atoms.numbers[1] == 7 and record.numbers[1] == 8
    record = calc.atoms
    atoms.cell = [10.0, 10.0, 10.0]
    atoms.get_forces()
    assert calc.atoms is not record and np.array_equal(calc.atoms.cell, atoms.cell)


def test_a_signed_zero_change_recomputes_and_nan_fails_every_time(student64):
    atoms = Atoms("H2", positions=[[0.0, 0, 0], [0.74, 0, 0]])
    atoms.calc = calc = StudentCalculator(student64)
    atoms.get_potential_energy()
    atoms.positions[0, 0] = -0.0  # equal as a number, not bit for bit: a change
    assert calc.check_state(atoms) == ["positions"]
    atoms.positions[1, 0] = np.nan
    for _ in range(2):  # no cached result is ever handed out for the bad geometry
        with pytest.raises(InputError, match="NaN"):
            atoms.get_potential_energy()


@pytest.mark.parametrize(
    "atoms, match",
    [
        (Atoms("Au", positions=[[0, 0, 0]]), "not among the model's elements"),
        (Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "NaN"),
        (Atoms(), "zero atoms"),
    ],
)
def test_bad_structures_are_clear_errors(student64, atoms, match):
    atoms.calc = StudentCalculator(student64)
    with pytest.raises(InputError, match=match):
        atoms.get_potential_energy()


def test_bad_model_argument():
    with pytest.raises(InputError, match="checkpoint path"):
        StudentCalculator(42)
