"""ASE calculator for students, following ASE's calculator contract."""

from __future__ import annotations

import os

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlff_distiller import keys
from mlff_distiller.data.graph import atoms_to_graph, validate_structure
from mlff_distiller.devices import torch_device
from mlff_distiller.errors import InputError
from mlff_distiller.md.cuda_graphs import GraphedEnergyAndForces
from mlff_distiller.md.fast import (
    DEFAULT_SKIN,
    CompiledEnergyAndForces,
    FastForceField,
    VerletNeighborList,
    edges_from_pairs,
    same_bytes,
    tune_allocator,
)
from mlff_distiller.models.forces import ForceField


class StudentCalculator(Calculator):
    """Energy (eV), forces (eV/Å) and, for periodic cells, stress (Voigt, eV/Å^3).

    By default runs the fast path (:mod:`mlff_distiller.md.fast`): a Verlet neighbour list
    reused across MD steps and a frozen energy + forces module, replayed from a CUDA graph on
    a GPU (:mod:`mlff_distiller.md.cuda_graphs`), with results equal to the eager model.
    Stress is computed by the eager model on the same neighbour list. The fast path also
    tunes glibc's allocator for the process (``md.fast.tune_allocator``).
    ``calc.atoms``, the calculator's copy of the last structure it computed, is updated in
    place when only the positions change (every MD step); copy it to keep a snapshot.

    Args:
        model_or_path: a student (``ForceField``) or the path of a saved checkpoint.
        device: torch device for the model.
        fast: use the fast path (False: rebuild the graph and run the eager model per call).
        skin: Verlet skin in Å of the fast path's neighbour list.
        compile: compile energy + forces (tens of seconds once; pays for long MD). On a
            CPU, ahead of time with AOTInductor (needs a C++ compiler); on a CUDA device,
            with ``torch.compile`` (Inductor's Triton kernels) recorded in the CUDA graph
            (:mod:`mlff_distiller.md.cuda_graphs`), since AOTInductor's CUDA programs crashed
            the process at load (torch 2.11, H200).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model_or_path: ForceField | str | os.PathLike,
        device: str = "cpu",
        fast: bool = True,
        skin: float = DEFAULT_SKIN,
        compile: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.device = torch_device(device)
        if isinstance(model_or_path, ForceField):
            model = model_or_path
        elif isinstance(model_or_path, (str, os.PathLike)):
            from mlff_distiller.models.checkpoint import load_student

            model = load_student(model_or_path)
        else:
            raise InputError(
                "StudentCalculator expects a student model or a checkpoint path, got "
                f"{type(model_or_path).__name__}"
            )
        self.model = model.to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype
        self.fast = bool(fast)
        if self.fast:
            tune_allocator()
        self.neighbors = VerletNeighborList(self.model.cutoff, skin)
        self._fast_model: FastForceField | None = None
        self._fast_fn = None
        self._compile = bool(compile)
        self._numbers = None
        self._inputs: dict[str, torch.Tensor] = {}
        self._pairs_source: np.ndarray | None = None  # the array inputs["pairs"] came from
        self._built_from: tuple[int, ...] = ()
        self._last_record = None  # the Atoms object that self.atoms last pointed to

    @property
    def compile_s(self) -> float:
        """Seconds spent compiling so far (0.0 without ``compile``): AOTInductor builds or
        cache loads on a CPU, torch.compile plus graph captures on a GPU."""
        return float(getattr(self._fast_fn, "compile_s", 0.0))

    def _weights_version(self) -> tuple[int, ...]:
        """In-place version counters of the model's tensors (change when weights change)."""
        if not hasattr(self, "_tensors"):
            self._tensors = [*self.model.parameters(), *self.model.buffers()]
        return tuple(t._version for t in self._tensors)

    def check_state(self, atoms, tol=1e-15):
        """ASE's change detection, with a fast exact path for the common MD case.

        When both structures hold the same per-atom arrays, each of ASE's ``all_changes``
        is compared bit for bit (:func:`~mlff_distiller.md.fast.same_bytes`): any
        difference, even below ASE's tolerance or 0.0 against -0.0, counts as a change,
        which only costs a recomputation. Anything else goes to ASE.
        """
        changes = None if self.atoms is None else self._exact_changes(self.atoms, atoms)
        return super().check_state(atoms, tol) if changes is None else changes

    def _exact_changes(self, old, atoms) -> list[str] | None:
        """ASE's ``all_changes`` from ``old`` to ``atoms``, compared bit for bit; None when
        the fast comparison does not apply (other per-atom arrays, ignored changes)."""
        if self.ignored_changes or old.arrays.keys() != atoms.arrays.keys():
            return None
        changes = [name for name in ("positions", "numbers", "initial_charges",
                                     "initial_magmoms")
                   if name in old.arrays and not same_bytes(old.arrays[name], atoms.arrays[name])]
        if not same_bytes(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if not same_bytes(old.pbc, atoms.pbc):
            changes.append("pbc")
        return changes

    def _record(self, atoms):
        """The calculator's copy of ``atoms`` (``self.atoms``, what ``check_state`` compares
        with). When only the positions moved since the last copy, as in every MD step,
        that copy's positions are overwritten in place instead of copying the whole Atoms
        object (ASE's ``Atoms.copy`` costs about as much as a tiny student's forces on a
        small molecule)."""
        last = self._last_record
        if last is not None and last is not atoms and self._exact_changes(last, atoms) == [
                "positions"]:
            np.copyto(last.arrays["positions"], atoms.arrays["positions"])
            return last
        self._last_record = atoms.copy()
        return self._last_record

    def _checked_structure(self, atoms) -> tuple[np.ndarray, ...]:
        """(numbers, positions, cell, pbc), fully validated when the atoms changed, else
        only checked for finite positions and cell (the per-step case)."""
        numbers, positions, cell = atoms.numbers, atoms.positions, atoms.cell.array
        if (self._numbers is None or not same_bytes(numbers, self._numbers)
                or not (np.isfinite(positions).all() and np.isfinite(cell).all())):
            return validate_structure(
                numbers, positions, cell, atoms.pbc,
                name=f"structure ({atoms.get_chemical_formula() or 'empty'})",
                elements=self.model.elements,
            )
        return self._numbers, positions, cell, atoms.pbc

    def _fast_inputs(self, atoms) -> dict[str, torch.Tensor]:
        """Model inputs on the Verlet list; candidates and species reused while valid."""
        numbers, positions, cell, pbc = self._checked_structure(atoms)
        version = self._weights_version()
        if self._fast_model is None or version != self._built_from:
            # (re)freeze a copy; weights changed in place since the last copy are picked up
            self._fast_model, self._built_from = FastForceField(self.model), version
            if self.device.type == "cuda":
                self._fast_fn = GraphedEnergyAndForces(self._fast_model, compile=self._compile)
            elif self._compile:
                self._fast_fn = CompiledEnergyAndForces(self._fast_model)
            else:
                self._fast_fn = self._fast_model
        inputs = self._inputs
        if numbers is not self._numbers:  # _checked_structure hands back _numbers if unchanged
            self._numbers = numbers
            z = torch.as_tensor(numbers, device=self.device)
            inputs["species"] = self._fast_model.species(z)
            inputs["batch"] = torch.zeros(len(numbers), dtype=torch.long, device=self.device)
            old = self.neighbors
            self.neighbors = VerletNeighborList(old.cutoff, old.skin, old.all_pairs_max_atoms)
        self.neighbors.update(positions, cell, pbc)
        pairs, pair_shift = self.neighbors.pairs_within(positions, cell)
        if pairs is not self._pairs_source:  # a new list (rebuilt, or pruned anew)
            self._pairs_source = pairs
            inputs["pairs"] = torch.as_tensor(pairs, device=self.device)
        inputs["pair_shift"] = pair_shift
        inputs["shift_vectors"] = (
            torch.as_tensor(pair_shift @ cell, dtype=self.dtype, device=self.device)
            if pbc.any() else None
        )
        inputs["positions"] = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        return inputs

    def _graph_from(self, inputs: dict, atoms) -> dict[str, torch.Tensor]:
        """The eager model's graph on the fast path's (Verlet) pairs, both directions."""
        edge_index, edge_shift = edges_from_pairs(inputs["pairs"].cpu().numpy(),
                                                  inputs["pair_shift"])
        return {
            keys.POSITIONS: inputs["positions"],
            keys.ATOMIC_NUMBERS: torch.as_tensor(self._numbers, device=self.device),
            keys.CELL: torch.as_tensor(atoms.cell.array, dtype=self.dtype,
                                       device=self.device).unsqueeze(0),
            keys.PBC: torch.as_tensor(atoms.pbc, device=self.device).unsqueeze(0),
            keys.BATCH: inputs["batch"],
            keys.NUM_ATOMS: torch.tensor([len(atoms)], device=self.device),
            keys.EDGE_INDEX: torch.as_tensor(edge_index, device=self.device),
            keys.EDGE_SHIFT: torch.as_tensor(edge_shift, dtype=self.dtype, device=self.device),
        }

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        # ASE's Calculator.calculate copies the atoms (and makes sure a directory exists,
        # which this calculator never writes to); record them only when they differ from
        # the last calculation's, reusing that record across MD steps (_record)
        if atoms is not None and (self.atoms is None or self.check_state(atoms)):
            self.atoms = self._record(atoms)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                f"stress needs a fully periodic cell; this structure has pbc={atoms.pbc.tolist()}"
            )
        if self.fast:
            inputs = self._fast_inputs(atoms)
            if want_stress:
                out = self.model(self._graph_from(inputs, atoms), compute_stress=True)
            else:
                energy, forces = self._fast_fn(
                    inputs["positions"], inputs["species"], inputs["pairs"],
                    inputs["shift_vectors"], inputs["batch"], 1,
                )
                out = {keys.ENERGY: energy, keys.FORCES: forces}
        else:
            graph = atoms_to_graph(atoms, self.model.cutoff, dtype=self.dtype,
                                   elements=self.model.elements)
            graph = {k: v.to(self.device) for k, v in graph.items()}
            out = self.model(graph, compute_forces=True, compute_stress=bool(atoms.pbc.all()))
        energy = out[keys.ENERGY].detach()[0].item()
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = out[keys.FORCES].detach().cpu().double().numpy()
        if keys.STRESS in out:
            stress = out[keys.STRESS].detach().cpu().double().numpy()[0]
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        elif "stress" in self.results:
            del self.results["stress"]


__all__ = ["StudentCalculator"]
