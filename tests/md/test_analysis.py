"""Geometry and trajectory analysis against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.build import molecule
from ase.units import kB
from scipy.spatial.transform import Rotation

from mlff_distiller.errors import InputError
from mlff_distiller.md import analysis as a


def test_kabsch_rmsd_removes_rotation_translation_not_distortion():
    water = molecule("H2O").positions
    rot = Rotation.random(random_state=1).as_matrix()
    moved = water @ rot.T + np.array([3.0, -1.0, 2.0])
    assert a.kabsch_rmsd(moved, water) == pytest.approx(0.0, abs=1e-10)
    # equilateral triangles of side 1 and 1.1: RMSD = (1.1 - 1) / sqrt(3)
    tri = np.array([[0, 0, 0], [1, 0, 0], [0.5, math.sqrt(3) / 2, 0]])
    assert a.kabsch_rmsd(tri @ rot.T, 1.1 * tri) == pytest.approx(0.1 / math.sqrt(3))
    # a mirror image is not a rotation: chiral 4-point set keeps a nonzero RMSD
    chiral = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3.0]])
    assert a.kabsch_rmsd(chiral * [1, 1, -1], chiral) > 0.1
    with pytest.raises(InputError):
        a.kabsch_rmsd(np.zeros((2, 3)), np.zeros((3, 3)))


def test_bonds_angles_of_water():
    w = molecule("H2O")
    bonds = a.find_bonds(w.numbers, w.positions)
    assert sorted(map(tuple, bonds.tolist())) == [(0, 1), (0, 2)]  # O-H twice, no H-H
    angles = a.find_angles(bonds, len(w))
    assert angles.tolist() == [[1, 0, 2]]
    assert a.bond_angles(w.positions, angles)[0] == pytest.approx(w.get_angle(1, 0, 2))
    lengths = a.bond_lengths(np.stack([w.positions, w.positions * 2]), bonds)
    assert lengths.shape == (2, 2)
    np.testing.assert_allclose(lengths[1], 2 * lengths[0])
    assert a.label_of(w.numbers, [1, 0]) == "H-O"
    assert a.label_of(w.numbers, [1, 0, 2]) == "H-O-H"


def test_geometry_failure_reasons():
    w = molecule("H2O")
    bonds = a.find_bonds(w.numbers, w.positions)
    r0 = a.bond_lengths(w.positions, bonds)
    assert a.geometry_failure(w.positions, bonds, r0, 1.5, 0.5) is None
    stretched = w.positions.copy()
    stretched[1] *= 2.0
    assert "stretched" in a.geometry_failure(stretched, bonds, r0, 1.5, 0.5)
    collapsed = w.positions.copy()
    collapsed[2] = collapsed[1] + 0.1
    assert "apart" in a.geometry_failure(collapsed, bonds, r0, 10.0, 0.5)
    assert "non-finite" in a.geometry_failure(w.positions * np.nan, bonds, r0, 1.5, 0.5)


def test_energy_drift_by_hand():
    t = np.arange(0.0, 1000.0, 0.5)  # 1 ps at 0.5 fs
    e = -10.0 + 2e-4 * t  # 0.2 eV/ps for 4 atoms -> 0.05 eV/atom/ps
    out = a.energy_drift(t, e, n_atoms=4, timestep_fs=0.5, temperature_K=300.0)
    assert out["drift_eV_per_atom_per_ps"] == pytest.approx(0.05)
    per_100 = 2e-4 * 50  # eV per 100 steps of 0.5 fs
    assert out["drift_percent_per_100_steps"] == pytest.approx(100 * per_100 / (6 * kB * 300))
    assert out["drift_percent_of_total_per_100_steps"] == pytest.approx(100 * per_100 / 10)
    assert out["max_deviation_eV_per_atom"] == pytest.approx(2e-4 * 999.5 / 4)
    with pytest.raises(InputError):
        a.energy_drift(t[:1], e[:1], 4, 0.5, 300.0)


def test_histogram_overlap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20000)
    assert a.histogram_overlap(x, x) == pytest.approx(1.0)
    assert a.histogram_overlap([0.0, 0.1], [5.0, 5.1]) == 0.0
    # two unit normals one sigma apart overlap by 2 Phi(-1/2) = 0.617
    shifted = a.histogram_overlap(x, rng.normal(size=20000) + 1.0, bins=60)
    assert shifted == pytest.approx(0.617, abs=0.03)
    assert math.isnan(a.histogram_overlap([], [1.0]))


@pytest.mark.parametrize("n_atoms", [2, 9, a.ALL_PAIRS_MAX_ATOMS, a.ALL_PAIRS_MAX_ATOMS + 1, 300])
def test_min_distance_equals_every_pair_on_both_paths(n_atoms):
    """All pairs for small structures, a k-d tree above ALL_PAIRS_MAX_ATOMS: both give the
    smallest of all n(n-1)/2 distances, and 0 for two atoms on the same spot."""
    positions = np.random.default_rng(n_atoms).random((n_atoms, 3)) * 2.0 * n_atoms ** (1 / 3)
    brute = min(float(np.linalg.norm(positions[i] - positions[j]))
                for i in range(n_atoms) for j in range(i + 1, n_atoms))
    assert a.min_distance(positions) == pytest.approx(brute, rel=1e-12)
    positions[-1] = positions[0]
    assert a.min_distance(positions) == 0.0
    assert a.min_distance(positions[:1]) == math.inf


@pytest.mark.parametrize("event", ["stretch", "collision"])
def test_geometry_watch_gives_geometry_failures_answers_with_fewer_checks(event):
    """Along a jittering trajectory in which a bond slowly stretches (or two atoms slowly
    collide), the watch gives geometry_failure's answer at every step, checks the bonds
    and all pairs on fewer than half the sound steps, and reports non-finite positions."""
    rng = np.random.default_rng(0)
    positions = np.array([[0.0, 0, 0], [2.0, 0, 0], [0, 1.5, 0], [0, 0, 1.5], [1.5, 1.5, 0]])
    bonds = np.array([[0, 2], [0, 3], [2, 4]])
    r0 = a.bond_lengths(positions, bonds)
    watch = a.GeometryWatch(bonds, r0, 1.3, 0.5)
    steps, failed = 400, 0
    for step in range(steps):
        positions = positions + rng.normal(0, 0.002, positions.shape)
        if event == "stretch":
            positions[4, 0] += 0.003  # bond 2-4 reaches 1.3x its start after ~150 steps
        else:
            positions[1, 0] -= 0.006  # atom 1 reaches 0.5 Å from atom 0 after ~250 steps
        expected = a.geometry_failure(positions, bonds, r0, 1.3, 0.5)
        assert watch.failure(positions) == expected, step
        failed += expected is not None
    assert 50 < failed < steps - 50  # both sound and broken geometries were judged
    assert ("stretched" if event == "stretch" else "apart") in expected
    # a broken geometry is checked in full every step; the sound ones, on some steps
    assert watch.n_full_checks - failed < (steps - failed) / 2
    assert watch.failure(positions * np.nan) == "non-finite positions"

def test_largest_squared_displacement():
    reference = np.zeros((3, 3))
    moved = reference.copy()
    moved[1] = [0.3, 0.4, 0.0]
    moved[2] = [0.1, 0.0, 0.0]
    assert a.largest_squared_displacement(moved, reference) == pytest.approx(0.25)
    weights = np.array([1.0, 0.0, 4.0])  # atom 1 may go anywhere
    assert a.largest_squared_displacement(moved, reference, weights) == pytest.approx(0.04)
    assert a.largest_squared_displacement(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    moved[0, 2] = np.nan
    assert math.isnan(a.largest_squared_displacement(moved, reference))
