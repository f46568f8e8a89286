"""Reusable physics assertions for tests of students, teachers and exports.

Each helper takes a callable ``model(graph) -> dict`` (a :class:`ForceField` or anything
with the same contract) or an ASE calculator, builds what it needs from ``ase.Atoms`` and
raises ``AssertionError`` with the measured discrepancy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation

from mlff_distiller import keys
from mlff_distiller.data.graph import atoms_to_graph

ModelFn = Callable[..., dict]


def predict(model, atoms: Atoms | Sequence[Atoms], stress: bool = False) -> dict[str, np.ndarray]:
    """Run ``model`` on structures; float64 numpy results (energy (B,), forces (N,3), ...)."""
    dtype = next(model.parameters()).dtype
    graph = atoms_to_graph(atoms, model.cutoff, dtype=dtype)
    out = model(graph, compute_forces=True, compute_stress=stress)
    return {k: v.detach().double().cpu().numpy() for k, v in out.items()}


def random_molecule(n_atoms: int = 12, elements=(1, 6, 7, 8), seed: int = 0,
                    min_distance: float = 0.9) -> Atoms:
    """A random compact non-periodic cluster with no pair closer than ``min_distance`` Å."""
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    box = 1.2 * n_atoms ** (1 / 3) + 1.0
    while len(positions) < n_atoms:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm(p - q) >= min_distance for q in positions):
            positions.append(p)
    numbers = rng.choice(elements, n_atoms)
    return Atoms(numbers=numbers, positions=np.array(positions))


def assert_invariances(model, atoms: Atoms, atol: float = 1e-5, seed: int = 0) -> None:
    """Energy invariant and forces equivariant under rotation, translation, permutation."""
    ref = predict(model, atoms)
    rng = np.random.default_rng(seed)
    rot = Rotation.random(random_state=seed).as_matrix()
    shift = rng.normal(size=3) * 3.0
    perm = rng.permutation(len(atoms))

    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rot.T + shift
    out = predict(model, rotated)
    _close(out[keys.ENERGY], ref[keys.ENERGY], atol, "energy after rotation+translation")
    _close(out[keys.FORCES], ref[keys.FORCES] @ rot.T, atol, "forces after rotation")

    permuted = atoms[perm]
    out = predict(model, permuted)
    _close(out[keys.ENERGY], ref[keys.ENERGY], atol, "energy after permutation")
    _close(out[keys.FORCES], ref[keys.FORCES][perm], atol, "forces after permutation")


def assert_forces_are_gradient(model, atoms: Atoms, delta: float = 1e-5,
                               rtol: float = 1e-6, n_coords: int | None = None) -> float:
    """Forces equal -dE/dr by central differences (run the model in float64).

    Returns the relative error max|F - F_fd| / max|F|.
    """
    forces = predict(model, atoms)[keys.FORCES]
    coords = [(a, c) for a in range(len(atoms)) for c in range(3)]
    if n_coords is not None:
        coords = coords[:n_coords]
    numeric = np.zeros_like(forces)
    for a, c in coords:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += delta
        minus.positions[a, c] -= delta
        e_plus = predict(model, plus)[keys.ENERGY][0]
        e_minus = predict(model, minus)[keys.ENERGY][0]
        numeric[a, c] = -(e_plus - e_minus) / (2 * delta)
    mask = np.zeros_like(forces, dtype=bool)
    for a, c in coords:
        mask[a, c] = True
    err = np.max(np.abs(forces[mask] - numeric[mask])) / max(np.max(np.abs(forces[mask])), 1e-12)
    assert err < rtol, f"forces differ from -dE/dr by relative {err:.3e} (tolerance {rtol})"
    return float(err)


def assert_stress_is_strain_derivative(model, atoms: Atoms, delta: float = 1e-5,
                                       rtol: float = 1e-6) -> float:
    """Stress equals (1/V) dE/d(strain) by central differences of a symmetric strain."""
    stress = predict(model, atoms, stress=True)[keys.STRESS][0]
    volume = atoms.get_volume()
    numeric = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (1.0, -1.0):
                strain = np.eye(3)
                strain[i, j] += sign * delta * 0.5
                strain[j, i] += sign * delta * 0.5
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ strain, scale_atoms=True)
                energies.append(predict(model, strained)[keys.ENERGY][0])
            numeric[i, j] = (energies[0] - energies[1]) / (2 * delta) / volume
    err = np.max(np.abs(stress - numeric)) / max(np.max(np.abs(stress)), 1e-12)
    assert err < rtol, f"stress differs from strain derivative by relative {err:.3e}"
    return float(err)


def assert_batch_equals_single(model, structures: Sequence[Atoms], atol: float = 1e-5) -> None:
    """One batched call gives the same energies and forces as one call per structure."""
    batched = predict(model, list(structures))
    singles = [predict(model, s) for s in structures]
    _close(batched[keys.ENERGY], np.concatenate([s[keys.ENERGY] for s in singles]), atol,
           "batched energies")
    _close(batched[keys.FORCES], np.concatenate([s[keys.FORCES] for s in singles]), atol,
           "batched forces")


def assert_fragments_add(model, a: Atoms, b: Atoms, separation: float = 20.0,
                         atol: float = 1e-5) -> None:
    """Two fragments ``separation`` Å apart have the sum of their separate energies."""
    far = b.copy()
    far.positions += np.array([separation + np.ptp(a.positions[:, 0]) + np.ptp(b.positions[:, 0]),
                               0.0, 0.0])
    joint = predict(model, a + far)[keys.ENERGY][0]
    apart = predict(model, a)[keys.ENERGY][0] + predict(model, b)[keys.ENERGY][0]
    _close(joint, apart, atol, f"energy of fragments {separation} Å apart vs sum")


def assert_supercell_extensive(model, atoms: Atoms, repeat=(2, 2, 1), rtol: float = 1e-6) -> None:
    """A periodic supercell has n_cells times the energy of its cell."""
    n = int(np.prod(repeat))
    e_cell = predict(model, atoms)[keys.ENERGY][0]
    e_super = predict(model, atoms.repeat(repeat))[keys.ENERGY][0]
    _close(e_super, n * e_cell, rtol * max(abs(n * e_cell), 1.0), f"supercell {repeat} energy")


def assert_calculator_matches_model(calc, model, atoms: Atoms, atol: float = 1e-6) -> None:
    """An ASE calculator returns the model's energy and forces (and stress if periodic)."""
    ref = predict(model, atoms, stress=bool(atoms.pbc.all()))
    atoms = atoms.copy()
    atoms.calc = calc
    _close(atoms.get_potential_energy(), ref[keys.ENERGY][0], atol, "calculator energy")
    _close(atoms.get_forces(), ref[keys.FORCES], atol, "calculator forces")
    if atoms.pbc.all():
        from ase.stress import full_3x3_to_voigt_6_stress

        _close(atoms.get_stress(), full_3x3_to_voigt_6_stress(ref[keys.STRESS][0]), atol,
               "calculator stress")


def small_molecules() -> list[Atoms]:
    """A few ASE g2 molecules of different sizes and elements (H C N O)."""
    return [molecule(name) for name in ("H2O", "CH3CH2OH", "C6H6", "CH3CONH2")]


def _close(actual, expected, atol: float, what: str) -> None:
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    assert diff <= atol, f"{what}: max |difference| {diff:.3e} > {atol:.1e}"


__all__ = [
    "assert_batch_equals_single",
    "assert_calculator_matches_model",
    "assert_forces_are_gradient",
    "assert_fragments_add",
    "assert_invariances",
    "assert_stress_is_strain_derivative",
    "assert_supercell_extensive",
    "predict",
    "random_molecule",
    "small_molecules",
]
