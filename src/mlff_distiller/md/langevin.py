"""Langevin dynamics (NVT) for students: ASE's integrator without ASE's per-step bookkeeping.

:class:`StudentLangevin` is ASE's ``Langevin`` (same arguments, random numbers, observers,
trajectory and logging) whose step, when the atoms' calculator is a
:class:`~mlff_distiller.md.calculator.StudentCalculator` on its fast path, does ASE's
operations in the same order but takes the forces from the student directly (the compiled
program with ``compile=True``) on :class:`~mlff_distiller.md.verlet.StudentVerlet`'s pair
list, instead of through the calculator protocol, its change checks and its per-step
pruning. Positions and momenta still go through ``Atoms.set_positions`` and
``set_momenta``, so constraints that act on them (``FixCom``, as the MD runner sets for
NVT) apply as in ASE; constraints that change the forces an MD step sees, another
calculator, or forces handed to ``step`` take ASE's step unchanged.
"""

from __future__ import annotations

import numpy as np
from ase.md.langevin import Langevin

from mlff_distiller.md.verlet import StudentSteps


class StudentLangevin(StudentSteps, Langevin):
    """Langevin NVT; arguments as ASE's ``Langevin`` plus the pair list's.

    Args:
        atoms: the structure, its calculator attached.
        timestep: in ASE time units (``0.5 * ase.units.fs``).
        margin, prune: the pair list's, as in
            :class:`~mlff_distiller.md.verlet.StudentVerlet`.
        **kwargs: passed to ``Langevin`` (``temperature_K``, ``friction``, ``rng``,
            ``fixcm``, ``trajectory``, ``logfile``, ``loginterval``).

    Given the same ``rng`` state, it follows the same trajectory as ``Langevin``.
    """

    def step(self, forces=None):
        state = self._fast_state(forces, constraints_allowed=True)
        if state is None:
            return super().step(forces)
        atoms = self.atoms
        natoms = len(atoms)
        # ASE's Langevin.step, operation for operation; no constraint on this path
        # redistributes forces or random numbers
        forces = atoms.calc.results["forces"]
        self.v = atoms.get_velocities()
        xi = self.rng.standard_normal(size=(natoms, 3))
        eta = self.rng.standard_normal(size=(natoms, 3))
        self.comm.broadcast(xi, 0)
        self.comm.broadcast(eta, 0)
        self.rnd_pos = self.c5 * eta
        self.rnd_vel = self.c3 * xi - self.c4 * eta
        if self.fix_com:
            factor = np.sqrt(natoms / (natoms - 1.0))
            self.rnd_pos -= self.rnd_pos.sum(axis=0) / natoms
            self.rnd_vel -= (self.rnd_vel * self.masses).sum(axis=0) / (self.masses * natoms)
            self.rnd_pos *= factor
            self.rnd_vel *= factor
        self.v += self.c1 * forces / self.masses - self.c2 * self.v + self.rnd_vel
        x = atoms.get_positions()
        atoms.set_positions(x + self.dt * self.v + self.rnd_pos)  # applies constraints
        positions = atoms.get_positions()
        if np.isfinite(positions).all():
            forces = state.evaluate(positions, atoms, self)
        else:  # the calculator names them, as in ASE's step
            state.forget()
            forces = atoms.get_forces(md=True)
        self.v = (positions - x - self.rnd_pos) / self.dt
        self.v += self.c1 * forces / self.masses - self.c2 * self.v + self.rnd_vel
        atoms.set_momenta(self.v * self.masses)
        return forces


__all__ = ["StudentLangevin"]
