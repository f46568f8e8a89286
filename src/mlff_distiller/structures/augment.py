"""Augmentations: from one starting geometry, structures the student must also see.

Each function takes an ``ase.Atoms`` (Å) and a ``numpy.random.Generator`` and returns new
structures paired with their parameters (for provenance). None of them attach a calculator
to what they return.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units

from mlff_distiller.teachers.base import Teacher

Sample = tuple[Atoms, dict[str, float]]


def rattle(atoms: Atoms, n: int, sigma_range: tuple[float, float],
           rng: np.random.Generator) -> list[Sample]:
    """``n`` copies with Gaussian noise on every coordinate.

    Each copy draws its own sigma uniformly from ``sigma_range`` (Å), then displaces every
    coordinate by N(0, sigma^2).
    """
    out = []
    for _ in range(n):
        sigma = float(rng.uniform(*sigma_range))
        new = bare(atoms)
        new.positions += rng.normal(0.0, sigma, size=new.positions.shape)
        out.append((new, {"sigma": sigma}))
    return out


def bond_scan(atoms: Atoms, scales: tuple[float, ...], n_bonds: int,
              rng: np.random.Generator) -> list[Sample]:
    """Stretch or compress ``n_bonds`` random covalent bonds to ``scale * r0``.

    Bonds come from ASE's natural covalent radii. A terminal atom (one bond, e.g. H) moves
    alone along the bond; otherwise both ends move symmetrically. Scales below 1 teach
    short-range repulsion, above 1 bond breaking.
    """
    from ase.neighborlist import NeighborList, natural_cutoffs

    nl = NeighborList(natural_cutoffs(atoms), self_interaction=False, bothways=True)
    nl.update(atoms)
    degree = np.array([len(nl.get_neighbors(i)[0]) for i in range(len(atoms))])
    bonds = sorted({(int(min(i, j)), int(max(i, j))) for i in range(len(atoms))
                    for j in nl.get_neighbors(i)[0]})
    if not bonds or not scales:
        return []
    chosen = rng.choice(len(bonds), size=min(n_bonds, len(bonds)), replace=False)
    out = []
    for b in chosen:
        i, j = bonds[int(b)]
        vec = atoms.get_distance(i, j, mic=bool(atoms.pbc.any()), vector=True)
        r0 = float(np.linalg.norm(vec))
        unit = vec / r0
        for scale in scales:
            new = bare(atoms)
            stretch = (scale - 1.0) * r0
            if degree[j] == 1:
                new.positions[j] += stretch * unit
            elif degree[i] == 1:
                new.positions[i] -= stretch * unit
            else:
                new.positions[j] += 0.5 * stretch * unit
                new.positions[i] -= 0.5 * stretch * unit
            out.append((new, {"bond_i": i, "bond_j": j, "scale": float(scale), "r0": r0}))
    return out


def normal_mode_samples(atoms: Atoms, teacher: Teacher, n: int, temperature: float,
                        rng: np.random.Generator, relax_steps: int = 100,
                        min_frequency_cm: float = 50.0, quantum: bool = True) -> list[Sample]:
    """Thermal displacements along the teacher's normal modes at ``temperature`` (K).

    The geometry is first relaxed with the teacher (BFGS, ``relax_steps`` at most). With the
    mass-weighted Hessian H_m = M^-1/2 H M^-1/2, with rigid translations and rotations
    projected out, = sum_k lambda_k v_k v_k^T, each mode with
    frequency above ``min_frequency_cm`` gets a coordinate q_k ~ N(0, s_k^2) with
    s_k^2 = kT / lambda_k (classical) or (hbar w_k / 2) coth(hbar w_k / 2kT) / lambda_k
    (quantum, the default); the displacement is dx = M^-1/2 sum_k q_k v_k.
    """
    from ase.optimize import BFGS

    relaxed = bare(atoms)
    if relax_steps > 0:
        relaxed.calc = teacher.calculator()
        BFGS(relaxed, logfile=None).run(fmax=0.02, steps=relax_steps)
        relaxed = bare(relaxed)
    n_coords = 3 * len(relaxed)
    hessian = teacher.hessian_rows(relaxed, np.arange(n_coords))
    hessian = 0.5 * (hessian + hessian.T)
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(relaxed.get_masses()), 3)
    projector = _rigid_body_projector(relaxed)
    weighted = hessian * inv_sqrt_m[:, None] * inv_sqrt_m[None, :]
    eigval, eigvec = np.linalg.eigh(projector @ weighted @ projector)
    # hbar * omega in eV for eigenvalues in eV / (Å^2 amu), as in ase.vibrations
    to_ev = units._hbar * 1e10 / np.sqrt(units._e * units._amu)
    energies = to_ev * np.sqrt(np.clip(eigval, 0.0, None))
    keep = energies / units.invcm > min_frequency_cm
    eigval, eigvec, energies = eigval[keep], eigvec[:, keep], energies[keep]
    kt = units.kB * temperature
    if quantum:
        variance = 0.5 * energies / np.tanh(energies / (2 * kt)) / eigval
    else:
        variance = kt / eigval
    out = []
    for _ in range(n):
        q = rng.normal(size=len(eigval)) * np.sqrt(variance)
        new = bare(relaxed)
        new.positions += (inv_sqrt_m * (eigvec @ q)).reshape(-1, 3)
        out.append((new, {"temperature": float(temperature), "modes": int(keep.sum())}))
    return out


def teacher_md(atoms: Atoms, teacher: Teacher, steps: int, stride: int, temperature: float,
               rng: np.random.Generator, timestep: float = 0.5,
               friction: float = 0.01) -> list[Sample]:
    """Frames every ``stride`` steps of Langevin MD driven by the teacher.

    Args:
        steps: MD steps; ``timestep`` in fs; ``friction`` in 1/fs; ``temperature`` in K.
        stride: keep one frame every ``stride`` steps (the start is not kept).
    """
    from ase.constraints import FixCom
    from ase.md import velocitydistribution as velocities
    from ase.md.langevin import Langevin

    from mlff_distiller.md.velocities import maxwell_boltzmann

    moving = bare(atoms)
    moving.calc = teacher.calculator()
    maxwell_boltzmann(moving, temperature, rng)
    velocities.Stationary(moving)
    moving.set_constraint(FixCom())
    dyn = Langevin(moving, timestep=timestep * units.fs, temperature_K=temperature,
                   friction=friction / units.fs, fixcm=False, rng=rng)
    out = []
    for done in range(stride, steps + 1, stride):
        dyn.run(stride)
        if not np.all(np.isfinite(moving.positions)):
            break
        out.append((bare(moving), {"temperature": float(temperature), "step": done,
                                    "timestep_fs": float(timestep)}))
    return out


def _rigid_body_projector(atoms: Atoms) -> np.ndarray:
    """(3n, 3n) projector removing rigid translations and rotations in mass-weighted
    coordinates (Eckart conditions); linear molecules lose only the rotations that exist."""
    sqrt_m = np.sqrt(atoms.get_masses())
    centred = atoms.positions - atoms.get_center_of_mass()
    vectors = []
    for axis in np.eye(3):
        vectors.append((sqrt_m[:, None] * axis[None, :]).ravel())
        vectors.append((sqrt_m[:, None] * np.cross(axis, centred)).ravel())
    basis, singular, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    basis = basis[:, singular > 1e-6 * singular.max()]
    return np.eye(3 * len(atoms)) - basis @ basis.T


def bare(atoms: Atoms) -> Atoms:
    """A copy with geometry only: no calculator, momenta or extra info."""
    return Atoms(numbers=atoms.numbers.copy(), positions=atoms.positions.copy(),
                 cell=atoms.cell.array.copy(), pbc=atoms.pbc.copy())
