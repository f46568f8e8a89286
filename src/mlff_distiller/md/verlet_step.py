"""One velocity Verlet step of a molecule as one program: the integration in float64, the
student's energy and forces in its own dtype, and the displacement a pair list needs to be
checked against. :class:`~mlff_distiller.md.verlet.StudentVerlet` calls it once per step.

Shapes: ``N`` atoms, ``P`` pairs (each once). Units are ASE's: Å, eV, amu, ASE time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from mlff_distiller.md.fast import FastForceField, aoti_program


class VerletStep(nn.Module):
    """Velocity Verlet up to its last half kick, with the same float64 operations (and so
    the same results) as ASE's ``VelocityVerlet.step``::

        p(t + dt/2) = p(t) + (dt/2) F(t)
        r(t + dt)   = r(t) + dt p(t + dt/2) / m
        E, F(t + dt) = student(r(t + dt))

    The caller finishes the step, ``p(t + dt) = p(t + dt/2) + (dt/2) F(t + dt)``, once it
    knows ``F(t + dt)`` is right for its pair list (see ``moved`` below).
    """

    def __init__(self, fast: FastForceField) -> None:
        super().__init__()
        self.fast = fast

    def forward(
        self,
        positions: Tensor,  # (N, 3) float64 Å at t
        momenta: Tensor,  # (N, 3) float64 amu Å / ASE time at t
        forces: Tensor,  # (N, 3) float64 eV/Å at t
        masses: Tensor,  # (N, 1) float64 amu
        species: Tensor,  # (N,) element rows (FastForceField.species)
        pairs: Tensor,  # (2, P) pairs the student sees, each once
        reference: Tensor,  # (N, 3) float64 Å, the positions ``pairs`` was drawn at
        timestep: Tensor,  # (1,) float64 ASE time
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(positions (N, 3) at t + dt, momenta (N, 3) at t + dt/2, energy (1,) eV and
        forces (N, 3) eV/Å at t + dt, both float64, moved (2,) Å^2: the largest squared
        displacement of an atom from ``reference`` and within this step)."""
        momenta = momenta + (0.5 * timestep) * forces
        step = timestep * momenta / masses
        positions = positions + step
        batch = torch.zeros_like(species)
        energy, new_forces = self.fast(positions.to(self.fast.offsets.dtype), species, pairs,
                                       None, batch, 1)
        moved = positions - reference
        drift = (moved * moved).sum(1).max()
        stride = (step * step).sum(1).max()
        return (positions, momenta, energy.to(torch.float64), new_forces.to(torch.float64),
                torch.stack([drift, stride]))


class CompiledVerletStep:
    """:class:`VerletStep` compiled ahead of time by AOTInductor (dynamic atom and pair
    counts; kept in the on-disk program cache like the calculator's energy + forces
    program). Same arguments and results; a call the program cannot take (fewer than 2
    atoms, no pairs) runs the module itself."""

    def __init__(self, step: VerletStep) -> None:
        self.step = step
        self.compile_s = 0.0  # seconds spent compiling (or loading from the cache)
        self._run: Callable[[list[Tensor]], list[Tensor]] | None = None

    def __call__(self, *args: Tensor) -> tuple[Tensor, ...]:
        positions, pairs = args[0], args[5]
        if positions.shape[0] < 2 or pairs.shape[1] < 1:
            return self.step(*args)
        if self._run is None:
            start = time.perf_counter()
            self._run, _ = aoti_program(self.step.fast, "verlet_step", False,
                                        self.step.fast.offsets, self._traced)
            self.compile_s += time.perf_counter() - start
        return tuple(self._run([a.contiguous() for a in args]))

    def _traced(self):
        from torch.export import Dim

        from mlff_distiller.models.tracing import export_with_gradients

        atoms, pairs = Dim("atoms", min=2), Dim("pairs", min=1)
        dynamic = [{0: atoms}] * 5 + [{1: pairs}, {0: atoms}, None]
        return export_with_gradients(self.step, _example_inputs(self.step.fast), dynamic)


def _example_inputs(fast: FastForceField) -> list[Tensor]:
    """Tracing inputs: 5 atoms within the cutoff, all 10 pairs, on the student's device."""
    n = 5
    generator = torch.Generator().manual_seed(0)
    f64 = {"dtype": torch.float64, "device": fast.offsets.device}
    positions = (torch.rand(n, 3, generator=generator) * (0.5 * fast.cutoff)).to(**f64)
    return [
        positions,
        torch.rand(n, 3, generator=generator).to(**f64),
        torch.rand(n, 3, generator=generator).to(**f64),
        torch.full((n, 1), 12.0, **f64),
        (torch.arange(n) % fast.offsets.shape[0]).to(fast.offsets.device),
        torch.triu_indices(n, n, 1).to(fast.offsets.device),
        positions.clone(),
        torch.tensor([0.05], **f64),
    ]


__all__ = ["CompiledVerletStep", "VerletStep"]
