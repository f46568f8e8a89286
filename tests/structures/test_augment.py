"""Augmentations: amplitudes, geometry and provenance parameters."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import molecule

from mlff_distiller.structures import augment
from mlff_distiller.teachers import load_teacher


@pytest.fixture(scope="module")
def emt():
    # cheap stand-in teacher (EMT has H C N O parameters): tests the wiring, not chemistry
    return load_teacher("ase:ase.calculators.emt:EMT")


def test_rattle_sigma_range_and_amplitude():
    atoms = molecule("C6H6")
    rng = np.random.default_rng(0)
    samples = augment.rattle(atoms, 20, (0.02, 0.06), rng)
    assert len(samples) == 20
    for new, params in samples:
        assert 0.02 <= params["sigma"] <= 0.06
        measured = np.std(new.positions - atoms.positions)
        assert measured == pytest.approx(params["sigma"], rel=0.35)
        assert new.calc is None


def test_bond_scan_sets_bond_length():
    atoms = molecule("CH3OH")
    samples = augment.bond_scan(atoms, (0.8, 1.25), n_bonds=3, rng=np.random.default_rng(1))
    assert len(samples) == 6
    for new, params in samples:
        i, j = params["bond_i"], params["bond_j"]
        assert new.get_distance(i, j) == pytest.approx(params["scale"] * params["r0"], abs=1e-9)
        moved = np.flatnonzero(np.abs(new.positions - atoms.positions).sum(1) > 0)
        assert set(moved) <= {i, j} and len(moved) >= 1


@pytest.fixture(scope="module")
def xtb():
    pytest.importorskip("tblite", reason="normal-mode tests use the [xtb] teacher")
    return load_teacher("xtb")


def test_normal_mode_thermal_energy_is_equipartition(xtb):
    """Classical sampling: mean harmonic energy 1/2 dx^T H dx = (modes/2) kT."""
    atoms = molecule("CH4")
    temperature = 300.0
    samples = augment.normal_mode_samples(atoms, xtb, 400, temperature,
                                          np.random.default_rng(2), relax_steps=200,
                                          quantum=False)
    relaxed = np.mean([s.positions for s, _ in samples], axis=0)
    ref = atoms.copy()
    ref.positions = relaxed
    hessian = xtb.hessian_rows(ref, np.arange(3 * len(ref)))
    hessian = 0.5 * (hessian + hessian.T)
    modes = samples[0][1]["modes"]
    assert modes == 9  # 3N - 6 vibrations of CH4
    energies = [0.5 * (s.positions - relaxed).ravel() @ hessian @ (s.positions - relaxed).ravel()
                for s, _ in samples]
    expected = 0.5 * modes * units.kB * temperature
    assert np.mean(energies) == pytest.approx(expected, rel=0.15)


def test_quantum_amplitudes_exceed_classical(xtb):
    atoms = molecule("H2O")
    spread = {}
    for quantum in (False, True):
        samples = augment.normal_mode_samples(atoms, xtb, 200, 300.0, np.random.default_rng(3),
                                              relax_steps=200, quantum=quantum)
        pos = np.array([s.positions for s, _ in samples])
        spread[quantum] = pos.std(axis=0).mean()
    assert spread[True] > 1.5 * spread[False]  # O-H stretches: hbar w >> kT at 300 K


def test_teacher_md_frames(emt):
    atoms = molecule("CH3OH")
    frames = augment.teacher_md(atoms, emt, steps=30, stride=10, temperature=300.0,
                                rng=np.random.default_rng(4))
    assert [p["step"] for _, p in frames] == [10, 20, 30]
    assert all(f.calc is None and "momenta" not in f.arrays for f, _ in frames)
    assert np.abs(frames[-1][0].positions - atoms.positions).max() > 1e-3
    com = [f.get_center_of_mass() for f, _ in frames]
    assert np.allclose(com, atoms.get_center_of_mass(), atol=1e-6)  # FixCom holds
