"""Velocity Verlet (NVE) for students: ASE's integrator with one program call per step.

ASE's ``VelocityVerlet`` step through :class:`~mlff_distiller.md.calculator.StudentCalculator`
spends 90-150 µs outside the model on a small molecule (Atoms accessors, the calculator
protocol, the neighbour-list check and pruning, array conversions), as long as a ``tiny``
student's forces on 9 atoms. :class:`StudentVerlet` is that integrator, with the same
arguments, observers, trajectory and logging, whose step is one call of
:class:`~mlff_distiller.md.verlet_step.VerletStep` (compiled when the calculator compiles)
when the atoms' calculator is a ``StudentCalculator`` on its fast path and the structure is
a molecule without constraints. It computes the same float64 operations as ASE's step, so
both follow the same trajectory. Anything else (another calculator, constraints, a periodic
cell, forces handed to ``step``) takes ASE's step unchanged.

Pairs: each step gives the student the pairs that were within ``cutoff + margin`` when the
list was last refreshed from the calculator's Verlet list. Pairs beyond the cutoff
contribute exactly zero, so the forces equal those of a fresh list while no atom has moved
more than ``margin / 2`` since the refresh. The step program returns that displacement: the
list is refreshed before a step that could exceed it, and a step that did is recomputed on
a fresh list.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase.md.verlet import VelocityVerlet

from mlff_distiller.errors import InputError
from mlff_distiller.md.calculator import StudentCalculator
from mlff_distiller.md.fast import same_bytes

DEFAULT_MARGIN = 0.2  # Å beyond the cutoff kept in the per-step pair list


class StudentVerlet(VelocityVerlet):
    """NVE velocity Verlet; arguments as ASE's ``VelocityVerlet`` plus ``margin``.

    Args:
        atoms: the structure, its calculator attached.
        timestep: in ASE time units (``0.5 * ase.units.fs``).
        margin: Å beyond the cutoff in the per-step pair list (at most the calculator's
            Verlet skin): larger refreshes the list less often, smaller gives the student
            fewer pairs.
        **kwargs: passed to ``VelocityVerlet`` (``trajectory``, ``logfile``, ``loginterval``).
    """

    def __init__(self, atoms, timestep: float, margin: float = DEFAULT_MARGIN, **kwargs):
        if not margin > 0:
            raise InputError(f"StudentVerlet margin={margin} Å (expected > 0)")
        super().__init__(atoms, timestep=timestep, **kwargs)
        self.margin = float(margin)
        self.fused_steps = 0  # steps taken as one program call
        self.list_refreshes = 0  # pair lists drawn (the first one included)
        self.recomputed_steps = 0  # steps whose forces were redone on a fresh list
        self._state: _PairList | None = None
        self._checked = False  # the calculator's state was checked in this run
        self._fresh = False  # the last step left the calculator's results current

    def irun(self, steps=50):
        self._checked = False  # the first step of each run checks calculator and weights
        return super().irun(steps)

    def step(self, forces=None):
        atoms = self.atoms
        calc = atoms.calc
        self._fresh = False
        if forces is not None or not _fusable(atoms, calc):
            self._state = None
            return super().step(forces)
        state = self._state
        if not (self._checked and state is not None and state.current(atoms)):
            if calc._weights_version() != calc._built_from:
                calc.reset()  # its results are those of the old weights
            if calc.atoms is None or "forces" not in calc.results or calc.check_state(atoms):
                atoms.get_forces(md=True)  # the calculator's results now hold these positions
                state = None
            if "momenta" not in atoms.arrays:
                atoms.set_momenta(np.zeros((len(atoms), 3)))
            if state is None or state.calc is not calc or state.program is not calc.verlet_step():
                state = self._state = _PairList(calc, min(self.margin, calc.neighbors.skin))
            self._checked = True
        forces = state.step(atoms, self.dt, self)
        self.fused_steps += 1
        self._fresh = True
        return forces

    def _refresh_properties(self):
        # ASE's MD loop asks the calculator for forces after every step; a fused step has
        # just set them for the current positions
        if not self._fresh:
            super()._refresh_properties()


def _fusable(atoms, calc) -> bool:
    return (isinstance(calc, StudentCalculator) and calc.fast and not atoms.constraints
            and not atoms.pbc.any() and calc.neighbors.skin > 0)


class _PairList:
    """What :class:`StudentVerlet` keeps between fused steps of one calculator: the step
    program, the pairs (2, P) within ``cutoff + margin`` at the last refresh, the positions
    (N, 3) they were drawn at, the masses, and what the last step wrote."""

    def __init__(self, calc: StudentCalculator, margin: float) -> None:
        self.calc = calc
        self.program = calc.verlet_step()
        self.margin = margin
        self.device = calc.device
        self.pairs = self.reference = None
        self._timestep: tuple[float, torch.Tensor] | None = None
        self._masses: tuple[np.ndarray, np.ndarray | None, torch.Tensor] | None = None
        self._written: tuple[dict, np.ndarray, np.ndarray] | None = None

    def current(self, atoms) -> bool:
        """True when ``atoms`` and the calculator are as the last step left them: the
        calculator's results are then those of ``atoms``' positions."""
        if self._written is None or atoms.calc is not self.calc:
            return False
        results, positions, numbers = self._written
        return (self.calc.results is results and same_bytes(atoms.arrays["positions"], positions)
                and same_bytes(atoms.arrays["numbers"], numbers))

    def refresh(self, positions: np.ndarray, atoms) -> None:
        """Draw the pairs within ``cutoff + margin`` of ``positions`` (n, 3) Å."""
        neighbors = self.calc.neighbors
        neighbors.update(positions, atoms.cell.array, atoms.pbc)
        pairs, _ = neighbors.pairs_within(positions, atoms.cell.array, self.margin)
        self.pairs = torch.as_tensor(pairs, device=self.device)
        self.reference = torch.tensor(positions, dtype=torch.float64, device=self.device)

    def masses(self, atoms) -> torch.Tensor:
        """(N, 1) float64 amu, rebuilt only when the numbers or the masses array change."""
        numbers, given = atoms.arrays["numbers"], atoms.arrays.get("masses")
        cached = self._masses
        if (cached is None or not same_bytes(numbers, cached[0])
                or (given is None) != (cached[1] is None)
                or (given is not None and not same_bytes(given, cached[1]))):
            tensor = torch.tensor(atoms.get_masses()[:, None], device=self.device)
            cached = self._masses = (numbers.copy(), None if given is None else given.copy(),
                                     tensor)
        return cached[2]

    def step(self, atoms, dt: float, counts: StudentVerlet) -> np.ndarray:
        """One step of ``atoms`` (positions and momenta updated in place, the calculator's
        results set for the new positions); returns the new forces (N, 3) eV/Å."""
        calc, arrays, device = self.calc, atoms.arrays, self.device
        if self.pairs is None:
            self.refresh(arrays["positions"], atoms)
            counts.list_refreshes += 1
        if self._timestep is None or self._timestep[0] != dt:
            self._timestep = (dt, torch.tensor([dt], dtype=torch.float64, device=device))
        species = calc._inputs["species"]
        positions, momenta, energy, forces, moved = self.program(
            torch.from_numpy(arrays["positions"]).to(device),
            torch.from_numpy(arrays["momenta"]).to(device),
            torch.from_numpy(calc.results["forces"]).to(device),
            self.masses(atoms), species, self.pairs, self.reference, self._timestep[1],
        )
        new_positions = positions.cpu().numpy()
        value = energy.item()
        if not math.isfinite(value):  # let the calculator judge, as in ASE's step: it names
            np.copyto(arrays["positions"], new_positions)  # non-finite positions
            np.copyto(arrays["momenta"], momenta.cpu().numpy())
            calc.reset()
            self.pairs = None
            forces = atoms.get_forces(md=True)
            np.add(arrays["momenta"], 0.5 * dt * forces, out=arrays["momenta"])
            self._written = None
            return forces
        drift, stride = (math.sqrt(x) for x in moved.tolist())
        if drift >= 0.5 * self.margin:  # a pair may have entered the cutoff unseen
            self.refresh(new_positions, atoms)
            energy, forces = calc._fast_fn(positions.to(calc.dtype), species, self.pairs,
                                           None, calc._inputs["batch"], 1)
            forces = forces.to(torch.float64)
            value = energy.item()
            counts.list_refreshes += 1
            counts.recomputed_steps += 1
        elif drift + 2.0 * stride >= 0.5 * self.margin:  # the next step might move that far
            self.refresh(new_positions, atoms)
            counts.list_refreshes += 1
        forces = forces.cpu().numpy()
        # as ASE: p(t + dt) = p(t + dt/2) + 0.5 dt F(t + dt), in numpy
        np.add(momenta.cpu().numpy(), 0.5 * dt * forces, out=arrays["momenta"])
        np.copyto(arrays["positions"], new_positions)
        np.copyto(calc.atoms.arrays["positions"], new_positions)
        calc.results = {"energy": value, "free_energy": value, "forces": forces}
        self._written = (calc.results, new_positions.copy(), arrays["numbers"].copy())
        return forces


__all__ = ["DEFAULT_MARGIN", "StudentVerlet"]
