"""Physics checks on any Teacher, through its labels (not its internals)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

from mlff_distiller.teachers.base import Labels, Teacher


def labels_of(teacher: Teacher, atoms: Atoms, **kwargs) -> Labels:
    (result,) = teacher.label([atoms], **kwargs)
    assert isinstance(result, Labels), f"teacher {teacher.name} failed: {result}"
    return result


def assert_forces_are_gradient(teacher: Teacher, atoms: Atoms, coords, delta: float,
                               atol: float) -> None:
    """Forces equal -dE/dx by central differences of the teacher's energy on ``coords``."""
    forces = labels_of(teacher, atoms).forces
    for atom, axis in coords:
        energies = []
        for sign in (1.0, -1.0):
            displaced = atoms.copy()
            displaced.positions[atom, axis] += sign * delta
            energies.append(labels_of(teacher, displaced).energy)
        numeric = -(energies[0] - energies[1]) / (2 * delta)
        assert abs(forces[atom, axis] - numeric) < atol, (
            f"{teacher.name}: F[{atom},{axis}]={forces[atom, axis]:.5f} vs "
            f"-dE/dx={numeric:.5f} eV/Å")


def assert_rotation_equivariant(teacher: Teacher, atoms: Atoms, e_atol: float,
                                f_atol: float, seed: int = 0) -> None:
    """Energy invariant and forces rotate with the structure."""
    ref = labels_of(teacher, atoms)
    rot = Rotation.random(random_state=seed).as_matrix()
    rotated = atoms.copy()
    rotated.positions = (atoms.positions - atoms.positions.mean(0)) @ rot.T + 1.7
    out = labels_of(teacher, rotated)
    assert abs(out.energy - ref.energy) < e_atol, f"energy changed by {out.energy - ref.energy}"
    diff = np.abs(out.forces - ref.forces @ rot.T).max()
    assert diff < f_atol, f"forces not equivariant: max diff {diff:.2e} eV/Å"


def assert_hessian_rows_match_forces(teacher: Teacher, atoms: Atoms, rows: int, delta: float,
                                     atol: float) -> None:
    """Stored Hessian rows equal -dF/dx by central differences of the labeled forces."""
    labels = labels_of(teacher, atoms, hessian_rows=rows, seed=3)
    assert labels.hessian_rows.shape == (rows, 3 * len(atoms))
    for r, flat in enumerate(labels.hessian_row_index):
        atom, axis = divmod(int(flat), 3)
        forces = []
        for sign in (1.0, -1.0):
            displaced = atoms.copy()
            displaced.positions[atom, axis] += sign * delta
            forces.append(labels_of(teacher, displaced).forces.reshape(-1))
        numeric = -(forces[0] - forces[1]) / (2 * delta)
        diff = np.abs(labels.hessian_rows[r] - numeric).max()
        assert diff < atol, f"Hessian row {flat} differs from -dF/dx by {diff:.3e} eV/Å^2"
