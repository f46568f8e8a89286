"""torch-sim adapter: a student as a ``torch_sim`` ``ModelInterface``, and batched NVT.

Needs the ``torchsim`` extra (``pip install -c constraints.txt 'mlff-distiller[torchsim]'``,
torch-sim-atomistic 0.3.x). Energies and forces come from the fast path
(:class:`~mlff_distiller.md.fast.FastForceField`, in groups of whole systems of about
:data:`~mlff_distiller.md.fast.CPU_CHUNK_PAIRS` pairs on a CPU, so a big batch runs as fast
per atom as a small one) on one Verlet neighbour list per system
(:class:`~mlff_distiller.md.fast.VerletNeighborList`, the ASE calculator's, on CPU), kept
between calls and rebuilt only when an atom moved more than half the skin, the cell changed
or the system is another one; stress, and energy without forces, from the student's
autograd wrapper on graphs built anew each call (:mod:`mlff_distiller.data.graph`).
Stress uses ASE's sign convention (1/V dE/dstrain), as torch-sim does; it is zero for
non-periodic systems.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mlff_distiller import keys
from mlff_distiller.data.graph import collate, structure_graph, validate_structure
from mlff_distiller.devices import torch_device
from mlff_distiller.errors import InputError
from mlff_distiller.md.fast import (
    DEFAULT_SKIN,
    FastForceField,
    VerletNeighborList,
    batched_energy_and_forces,
    same_bytes,
    tune_allocator,
)
from mlff_distiller.models.forces import ForceField

try:
    import torch_sim as ts
    from torch_sim.models.interface import ModelInterface
except ImportError:  # the class below needs torch-sim; the error names the extra
    ts = None
    ModelInterface = torch.nn.Module


def _require() -> None:
    if ts is None:
        raise InputError(
            "the torch-sim adapter needs torch-sim-atomistic: "
            "pip install -c constraints.txt 'mlff-distiller[torchsim]'"
        )


class StudentModel(ModelInterface):
    """A student for torch-sim: ``forward(state)`` -> energy (B,), forces (N, 3), stress (B, 3, 3).

    Args:
        student: a student or a checkpoint path.
        device: torch device (default CPU).
        dtype: float dtype of the simulation (torch-sim defaults to float64).
        compute_stress: also return stress (needed by NPT / cell relaxation).
        compute_forces: also return forces.
        max_pairs: pairs per call of the fast path (whole systems per call); default
            :func:`~mlff_distiller.md.fast.chunk_pairs_for` the device (CPU: 1024, GPU: the
            whole batch in one call).
        compile: on a CPU, each system's energy and forces through the AOTInductor program
            of ``StudentCalculator(..., compile=True)``, one system per call (tens of
            seconds to build once per student, dtype and machine, then loaded from the
            on-disk cache; :attr:`compile_s`): several times the eager path's throughput on
            molecules (:func:`~mlff_distiller.md.fast.batched_energy_and_forces`). The
            stress path (periodic systems with ``compute_stress``) stays eager.
    """

    def __init__(
        self,
        student: ForceField | str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
        compute_stress: bool = True,
        compute_forces: bool = True,
        max_pairs: int | None | str = "auto",
        compile: bool = False,
    ) -> None:
        _require()
        super().__init__()
        if not isinstance(student, ForceField):
            from mlff_distiller.models.checkpoint import load_student

            student = load_student(student)
        self._device = torch_device(device or "cpu")
        self._dtype = dtype
        self._compute_stress = bool(compute_stress)
        self._compute_forces = bool(compute_forces)
        self._memory_scales_with = "n_atoms_x_density"
        self.model = student.to(device=self._device, dtype=dtype).eval()
        self.fast = FastForceField(self.model)  # a frozen copy, as the calculator's
        tune_allocator()  # as the calculator does: big batches otherwise page-fault each call
        self.energy_and_forces = batched_energy_and_forces(self.fast, compile=compile,
                                                           max_pairs=max_pairs)
        # per system of the last batch: its atomic numbers and its Verlet list
        self._lists: list[tuple[np.ndarray, VerletNeighborList]] = []
        self._species: torch.Tensor | None = None

    @property
    def compile_s(self) -> float:
        """Seconds spent building (or loading) compiled programs so far; 0.0 without
        ``compile``."""
        return float(getattr(self.energy_and_forces.fn, "compile_s", 0.0))

    def forward(self, state: Any, **kwargs) -> dict[str, torch.Tensor]:
        if isinstance(state, dict):
            state = ts.SimState(**state, masses=torch.ones_like(state["positions"]))
        state = state.to(self._device) if state.device != self._device else state
        pbc = torch.as_tensor(state.pbc, dtype=torch.bool).reshape(-1).expand(3)
        order = torch.argsort(state.system_idx, stable=True)
        want_stress = self._compute_stress and bool(pbc.all())
        if self._compute_forces and not want_stress:
            energy, forces = self.energy_and_forces(*self._fast_arguments(state, order, pbc))
            out = {keys.ENERGY: energy, keys.FORCES: forces}
        else:
            out = self.model(self._graph(state, order, pbc), compute_forces=self._compute_forces,
                             compute_stress=want_stress)
        result = {"energy": out[keys.ENERGY].detach()}
        if self._compute_forces:
            forces = torch.empty_like(out[keys.FORCES])
            forces[order] = out[keys.FORCES].detach()
            result["forces"] = forces
        if self._compute_stress:
            result["stress"] = (out[keys.STRESS].detach() if want_stress else
                                torch.zeros(state.n_systems, 3, 3, dtype=self._dtype,
                                            device=self._device))
        return result

    def _graph(self, state: Any, order: torch.Tensor, pbc: torch.Tensor
               ) -> dict[str, torch.Tensor]:
        """The eager model's collated graph, neighbour lists built anew."""
        graphs = []
        for b in range(state.n_systems):
            mask = state.system_idx == b
            graphs.append(structure_graph(
                state.atomic_numbers[mask].cpu().numpy(),
                state.positions[mask].detach().cpu().numpy(),
                state.row_vector_cell[b].detach().cpu().numpy(),
                pbc.cpu().numpy(),
                self.model.cutoff,
                dtype=self._dtype,
                name=f"torch-sim system {b}",
                elements=self.model.elements,
            ))
        graph = {k: v.to(self._device) for k, v in collate(graphs).items()}
        graph[keys.POSITIONS] = state.positions[order].detach().to(self._dtype)
        graph[keys.CELL] = state.row_vector_cell.detach().to(self._dtype)
        return graph

    def _fast_arguments(self, state: Any, order: torch.Tensor, pbc: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                   torch.Tensor | None, torch.Tensor, int]:
        """:meth:`FastForceField.forward`'s arguments for the state, atoms in system order,
        from each system's Verlet list (kept while the system's atomic numbers are the same;
        a system validated in full when they change, else checked for finite positions)."""
        batch = state.system_idx[order]
        numbers = state.atomic_numbers[order].cpu().numpy()
        positions = state.positions[order].detach()
        xyz = positions.cpu().numpy().astype(np.float64, copy=False)
        cells = state.row_vector_cell.detach().cpu().numpy().astype(np.float64, copy=False)
        pbc_np = pbc.cpu().numpy()
        counts = torch.bincount(state.system_idx, minlength=state.n_systems).tolist()
        check = not (np.isfinite(xyz).all() and np.isfinite(cells).all())
        periodic = bool(pbc_np.any())
        renewed = len(self._lists) != state.n_systems
        del self._lists[state.n_systems:]
        pairs, shifts, start = [], [], 0
        for b, n in enumerate(counts):
            z, r, cell = numbers[start:start + n], xyz[start:start + n], cells[b]
            known = b < len(self._lists) and same_bytes(z, self._lists[b][0])
            if check or not known:
                validate_structure(z, r, cell, pbc_np, name=f"torch-sim system {b}",
                                   elements=self.model.elements)
            if not known:
                entry = (z.copy(), VerletNeighborList(self.model.cutoff, DEFAULT_SKIN))
                self._lists[b:b + 1] = [entry]
                renewed = True
            neighbors = self._lists[b][1]
            neighbors.update(r, cell, pbc_np)
            system_pairs, pair_shift = neighbors.pairs_within(r, cell)
            pairs.append(system_pairs + start)
            if periodic:
                shifts.append(pair_shift @ cell)
            start += n
        if renewed or self._species is None:
            self._species = self.fast.species(torch.as_tensor(numbers, device=self._device))
        shift_vectors = None
        if periodic:
            shift_vectors = torch.as_tensor(np.concatenate(shifts), dtype=self._dtype,
                                            device=self._device)
        return (positions.to(self._dtype), self._species,
                torch.as_tensor(np.concatenate(pairs, axis=1), device=self._device),
                shift_vectors, batch, int(state.n_systems))

    @property
    def neighbor_list_builds(self) -> int:
        """Verlet list builds so far over the systems of the current batch."""
        return sum(neighbors.n_builds for _, neighbors in self._lists)


def run_nvt(
    student: ForceField | str | os.PathLike,
    structures: Sequence,
    steps: int = 100,
    temperature: float = 300.0,
    timestep_fs: float = 0.5,
    seed: int = 0,
    compile: bool = False,
) -> dict[str, Any]:
    """Batched Langevin NVT of several structures at once with torch-sim.

    Args:
        student: a student or checkpoint path.
        structures: ASE ``Atoms`` of any sizes with the same ``pbc`` (torch-sim needs one
            pbc per batch), simulated together as one batch.
        steps: MD steps; timestep_fs: fs; temperature: K.
        compile: on a CPU, forces from the compiled program (:class:`StudentModel`).

    Returns the final ASE structures and each system's final temperature (K) and energy (eV).
    """
    _require()
    if not structures:
        raise InputError("run_nvt: no structures given")
    # Langevin NVT never reads stress: periodic systems take the fast path too
    model = StudentModel(student, compile=compile, compute_stress=False)
    torch.manual_seed(seed)
    state = ts.io.atoms_to_state(list(structures), model.device, model.dtype)
    final = ts.integrate(
        system=state,
        model=model,
        integrator=ts.nvt_langevin,
        n_steps=int(steps),
        temperature=float(temperature),
        # in ps: integrate() itself converts with MetalUnits.time (the step was 98x too long)
        timestep=float(timestep_fs) * 1e-3,
    )
    kt = ts.calc_kT(masses=final.masses, momenta=final.momenta, system_idx=final.system_idx)
    kelvin = kt / ts.units.MetalUnits.temperature
    return {
        "structures": ts.io.state_to_atoms(final),
        "temperature_K": kelvin.tolist(),
        "energy_eV": model(final)["energy"].tolist(),
        "steps": int(steps),
    }


__all__ = ["StudentModel", "run_nvt"]
