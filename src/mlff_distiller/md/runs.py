"""MD and geometry optimisation with any ASE calculator, watched for failure.

:func:`run_md` runs NVE (velocity Verlet: :class:`~mlff_distiller.md.verlet.StudentVerlet`,
ASE's step without its bookkeeping for students) or NVT (Langevin:
:class:`~mlff_distiller.md.langevin.StudentLangevin`, likewise) from a Maxwell-Boltzmann
start and stops at the first sign of failure (broken/collapsed geometry, non-finite energy,
temperature runaway, or the calculator raising), returning the step instead of crashing.
:func:`optimise` relaxes a structure with ASE's FIRE or BFGS.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units

from mlff_distiller.errors import InputError
from mlff_distiller.md.analysis import GeometryWatch, bond_lengths, find_bonds


@dataclass(frozen=True)
class MDConfig:
    """Settings of MD validation; defaults follow the issue (0.5 fs, 300 K)."""

    temperature_K: float = 300.0  # Maxwell-Boltzmann start and Langevin target
    timestep_fs: float = 0.5  # velocity Verlet / Langevin step
    nve_steps: int = 2000  # 1 ps at 0.5 fs
    nvt_steps: int = 2000
    friction_per_fs: float = 0.01  # Langevin friction (1/fs)
    sample_interval: int = 10  # steps between stored frames / energies for plots
    bond_tolerance: float = 1.2  # bonded if d < tol * (sum of covalent radii) at the start
    stretch_factor: float = 1.5  # unstable when a bond exceeds this times its start
    min_distance_A: float = 0.5  # unstable when two atoms come closer (Å)
    max_temperature_factor: float = 3.0  # unstable when the windowed mean T exceeds this x T
    temperature_window: int = 100  # steps in the running mean temperature
    drift_bar_percent: float = 0.1  # NVE passes when drift < this % of (3/2) n kB T per 100 steps
    optimizer: str = "FIRE"  # FIRE or BFGS
    fmax: float = 0.05  # eV/Å, optimisation convergence
    max_opt_steps: int = 500
    conformers: int = 3  # conformers embedded per SMILES (optimisation and ordering)
    energy_tie_meV: float = 1.0  # conformer energies closer than this are ties
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        for name in ("temperature_K", "timestep_fs", "friction_per_fs", "fmax",
                     "stretch_factor", "min_distance_A", "max_temperature_factor"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} (expected > 0)")
        for name in ("nve_steps", "nvt_steps", "max_opt_steps"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} (expected >= 0)")
        for name in ("sample_interval", "temperature_window", "conformers"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} (expected >= 1)")
        if self.optimizer.upper() not in ("FIRE", "BFGS"):
            problems.append(f"optimizer={self.optimizer!r} (expected 'FIRE' or 'BFGS')")
        if problems:
            raise InputError("invalid MD config: " + "; ".join(problems))


def run_md(atoms: Atoms, calc, config: MDConfig, ensemble: str = "nve") -> dict:
    """Run NVE or NVT dynamics of ``atoms`` with ``calc``, stopping at the first failure.

    Returns a dict with ``stable``, ``failure`` (``None`` or ``{"step", "time_fs",
    "reason"}``), ``steps_done``, the per-step arrays ``time_fs``, ``potential_eV``,
    ``kinetic_eV``, ``temperature_K`` (every step, including step 0) and ``frames``
    (positions every ``sample_interval`` steps, (T, n, 3) Å).
    """
    from ase.constraints import FixCom
    from ase.md import velocitydistribution as vd

    from mlff_distiller.md.langevin import StudentLangevin
    from mlff_distiller.md.velocities import maxwell_boltzmann
    from mlff_distiller.md.verlet import StudentVerlet

    if ensemble not in ("nve", "nvt"):
        raise InputError(f"ensemble must be 'nve' or 'nvt', got {ensemble!r}")
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(config.seed)
    maxwell_boltzmann(atoms, config.temperature_K, rng)
    vd.Stationary(atoms)
    if len(atoms) > 2:
        vd.ZeroRotation(atoms)
    dt = config.timestep_fs * units.fs
    if ensemble == "nve":
        dyn = StudentVerlet(atoms, timestep=dt)  # ASE's VelocityVerlet for other calculators
        n_steps = config.nve_steps
    else:
        atoms.set_constraint(FixCom())  # the thermostat's noise must not move the molecule
        # ASE's Langevin, without its bookkeeping for students
        dyn = StudentLangevin(atoms, timestep=dt, temperature_K=config.temperature_K,
                              friction=config.friction_per_fs / units.fs, fixcm=False, rng=rng)
        n_steps = config.nvt_steps

    bonds = find_bonds(atoms.numbers, atoms.positions, config.bond_tolerance)
    geometry = GeometryWatch(bonds, bond_lengths(atoms.positions, bonds), config.stretch_factor,
                             config.min_distance_A)
    dof = atoms.get_number_of_degrees_of_freedom()  # constraints do not change in the run
    series: dict[str, list[float]] = {"potential_eV": [], "kinetic_eV": [], "temperature_K": []}
    frames: list[np.ndarray] = []
    window: deque[float] = deque(maxlen=config.temperature_window)
    failure = None
    step = 0
    try:
        for _ in dyn.irun(n_steps):
            step = dyn.nsteps
            epot = dyn.last_step_energy()  # None after a step through ASE's integrator
            if epot is None:
                epot = float(atoms.get_potential_energy())
            ekin = float(atoms.get_kinetic_energy())
            temp = 2.0 * ekin / (dof * units.kB)  # = atoms.get_temperature()
            reason = _failure(atoms.positions, epot, temp, window, geometry, config)
            if reason is not None:
                failure = reason
                break
            series["potential_eV"].append(epot)
            series["kinetic_eV"].append(ekin)
            series["temperature_K"].append(temp)
            if step % config.sample_interval == 0:
                frames.append(atoms.positions.copy())
    except Exception as exc:  # noqa: BLE001 - an exploding run is a result, not a crash
        failure = f"calculator failed: {type(exc).__name__}: {exc}"
        step = dyn.nsteps + 1
    n_ok = len(series["potential_eV"])
    return {
        "ensemble": ensemble,
        "n_steps": int(n_steps),
        "steps_done": int(max(n_ok - 1, 0)),
        "stable": failure is None,
        "failure": None if failure is None else {
            "step": int(step), "time_fs": step * config.timestep_fs, "reason": failure},
        "time_fs": np.arange(n_ok) * config.timestep_fs,
        **{k: np.asarray(v) for k, v in series.items()},
        "frames": np.asarray(frames).reshape(-1, len(atoms), 3),
        "n_bonds": int(len(bonds)),
    }


def _failure(positions, epot, temp, window, geometry: GeometryWatch, config) -> str | None:
    if not (np.isfinite(epot) and np.isfinite(temp)):
        return f"non-finite energy ({epot}) or temperature ({temp})"
    reason = geometry.failure(positions)
    if reason is not None:
        return reason
    window.append(temp)
    limit = config.max_temperature_factor * config.temperature_K
    if len(window) == window.maxlen and sum(window) / len(window) > limit:
        return (f"temperature runaway: mean {sum(window) / len(window):.0f} K over "
                f"{window.maxlen} steps (limit {limit:.0f} K)")
    return None


def optimise(atoms: Atoms, calc, config: MDConfig) -> tuple[Atoms, dict]:
    """Relax ``atoms`` with ``calc`` (FIRE or BFGS to ``fmax``); never raises on failure.

    Returns the final structure (no calculator attached) and ``{"converged", "steps",
    "energy_eV", "fmax_eV_per_A", "error"}``.
    """
    from ase.optimize import BFGS, FIRE

    work = atoms.copy()
    work.calc = calc
    opt_cls = {"FIRE": FIRE, "BFGS": BFGS}[config.optimizer.upper()]
    opt = opt_cls(work, logfile=None)
    info: dict = {"converged": False, "steps": 0, "energy_eV": None, "fmax_eV_per_A": None,
                  "error": None}
    try:
        info["converged"] = bool(opt.run(fmax=config.fmax, steps=config.max_opt_steps))
        info["energy_eV"] = float(work.get_potential_energy())
        info["fmax_eV_per_A"] = float(np.linalg.norm(work.get_forces(), axis=1).max())
    except Exception as exc:  # noqa: BLE001 - a failed relaxation is reported
        info["error"] = f"{type(exc).__name__}: {exc}"
    info["steps"] = int(opt.nsteps)
    final = Atoms(numbers=work.numbers, positions=work.positions, cell=work.cell, pbc=work.pbc)
    return final, info


def energy_of(atoms: Atoms, calc) -> float:
    """Potential energy (eV) of ``atoms`` with ``calc``; ``nan`` if the calculator fails."""
    work = atoms.copy()
    work.calc = calc
    try:
        return float(work.get_potential_energy())
    except Exception:  # noqa: BLE001 - recorded as nan in comparisons
        return float("nan")
