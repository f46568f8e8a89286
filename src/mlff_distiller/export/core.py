"""What every export shares: the positional tensor interface, metadata and the parity check.

Every exported student is the same function of plain tensors (the neighbour list stays
outside)::

    (positions (N, 3) Å, atomic_numbers (N,) int64, edge_index (2, E) int64,
     edge_shift (E, 3), cell (B, 3, 3) Å, batch (N,) int64)
        -> (energy (B,) eV, forces (N, 3) eV/Å, stress (B, 3, 3) eV/Å^3)

``stress`` is zero for structures whose cell has zero volume (molecules).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlff_distiller import keys
from mlff_distiller.errors import InputError
from mlff_distiller.models.checkpoint import UNITS
from mlff_distiller.models.forces import ForceField

INPUT_NAMES = (
    keys.POSITIONS, keys.ATOMIC_NUMBERS, keys.EDGE_INDEX, keys.EDGE_SHIFT, keys.CELL, keys.BATCH
)
OUTPUT_NAMES = (keys.ENERGY, keys.FORCES, keys.STRESS)
PARITY_TOLERANCE = 1e-5  # eV, eV/Å, eV/Å^3: float32 exports vs the eager student
RELATIVE_TOLERANCE = 1e-6  # x the largest reference magnitude (see check_parity)


class ExportableStudent(nn.Module):
    """A student as a function of positional tensors (see module docstring).

    Forces and stress come from the student's own autograd wrapper (``ForceField``).
    """

    def __init__(self, student: ForceField) -> None:
        super().__init__()
        self.student = student

    def forward(
        self,
        positions: Tensor,
        atomic_numbers: Tensor,
        edge_index: Tensor,
        edge_shift: Tensor,
        cell: Tensor,
        batch: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        graph = {
            keys.POSITIONS: positions,
            keys.ATOMIC_NUMBERS: atomic_numbers,
            keys.EDGE_INDEX: edge_index,
            keys.EDGE_SHIFT: edge_shift,
            keys.CELL: cell,
            keys.BATCH: batch,
        }
        out = self.student(graph, True, True)
        a, b, c = cell[:, 0], cell[:, 1], cell[:, 2]
        volume = torch.abs(
            a[:, 0] * (b[:, 1] * c[:, 2] - b[:, 2] * c[:, 1])
            - a[:, 1] * (b[:, 0] * c[:, 2] - b[:, 2] * c[:, 0])
            + a[:, 2] * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0])
        )
        periodic = (volume > 1e-6).view(-1, 1, 1)
        stress = torch.where(periodic, out[keys.STRESS], torch.zeros_like(out[keys.STRESS]))
        return out[keys.ENERGY], out[keys.FORCES], stress


@dataclass
class LoadedExport:
    """A loaded export: ``predict(graph)`` -> {energy (B,), forces (N, 3), stress (B, 3, 3)}.

    Args:
        run: the export's function of the positional inputs (:data:`INPUT_NAMES`) returning
            (energy, forces, stress) tensors or arrays.
        metadata: what the export carries (see :func:`export_metadata`).
        needs_edges: traced exports need E >= 1 and get a ghost structure otherwise.
        graph_input: ``run`` takes the whole graph dict and returns the output dict
            (exports run through an engine's own calculator, e.g. metatomic).
    """

    run: Callable[..., Any]
    metadata: dict[str, Any]
    needs_edges: bool = False
    graph_input: bool = False

    def predict(self, graph: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if self.graph_input:
            return self.run(graph)
        args = graph_args(graph)
        n, b = args[0].shape[0], args[4].shape[0]
        if self.needs_edges:
            cutoff, element = self.metadata["cutoff"], self.metadata["elements"][0]
            args, n, b = pad_empty_edges(args, cutoff, element)
        energy, forces, stress = (torch.as_tensor(x) for x in self.run(*args))
        return {keys.ENERGY: energy[:b], keys.FORCES: forces[:n], keys.STRESS: stress[:b]}


def graph_args(graph: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
    """The positional inputs of an export, in :data:`INPUT_NAMES` order."""
    missing = [k for k in INPUT_NAMES if k not in graph]
    if missing:
        raise InputError(f"graph is missing {missing}; build it with data.graph.atoms_to_graph")
    return tuple(graph[k] for k in INPUT_NAMES)


def pad_empty_edges(
    args: Sequence[Tensor], cutoff: float, element: int
) -> tuple[tuple[Tensor, ...], int, int]:
    """Append a ghost structure of two bonded atoms when the graph has no edges.

    Traced exports (ONNX, AOTInductor) are compiled for E >= 1. The ghost structure has its
    own batch index and its edges join only its own two atoms, so it changes nothing else;
    slice outputs back with the returned (n_atoms, n_structures).
    """
    positions, numbers, edge_index, edge_shift, cell, batch = args
    n, b = positions.shape[0], cell.shape[0]
    if edge_index.shape[1] > 0:
        return tuple(args), n, b
    ghost = positions.new_tensor([[0.0, 0.0, 0.0], [0.5 * cutoff, 0.0, 0.0]])
    ghost = ghost + positions.detach().abs().max() + 10.0 * cutoff
    return (
        torch.cat([positions, ghost]),
        torch.cat([numbers, numbers.new_full((2,), element)]),
        edge_index.new_tensor([[n, n + 1], [n + 1, n]]),
        edge_shift.new_zeros((2, 3)),
        torch.cat([cell, cell.new_zeros((1, 3, 3))]),
        torch.cat([batch, batch.new_full((2,), b)]),
    ), n, b


def export_metadata(student: ForceField, fmt: str) -> dict[str, Any]:
    """Metadata every export carries: cutoff, elements, units, teacher id, config, I/O names."""
    from mlff_distiller.models.presets import preset_name

    meta = dict(getattr(student, "checkpoint_metadata", {}) or {})
    return {
        "format": fmt,
        "cutoff": float(student.cutoff),
        "elements": [int(z) for z in student.elements],
        "units": dict(UNITS),
        "teacher": str(meta.get("teacher", meta.get("teacher_id", ""))),
        "preset": preset_name(student.config) or "custom",
        "config": student.config.to_dict(),
        "dtype": str(next(student.parameters()).dtype).removeprefix("torch."),
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "source_metadata": {k: v for k, v in meta.items() if k in ("dataset_hash", "dataset")},
    }


def parity_structures(elements: Sequence[int], cutoff: float) -> dict[str, list]:
    """Test structures built from the model's own elements (deterministic).

    Returns named lists of ASE ``Atoms``: a small molecule, a larger periodic cell, a single
    atom (zero edges) and a batch mixing all of them.
    """
    from ase import Atoms

    rng = np.random.default_rng(0)
    elements = list(elements)

    def cluster(n: int, spacing: float) -> np.ndarray:
        side = int(np.ceil(n ** (1 / 3)))
        grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
        return grid[:n] * spacing + rng.normal(scale=0.1, size=(n, 3))

    molecule = Atoms(
        numbers=[elements[k % len(elements)] for k in range(5)], positions=cluster(5, 1.3)
    )
    box = max(2.6 * 2, 0.8 * cutoff)
    crystal = Atoms(
        numbers=[elements[(3 * k + 1) % len(elements)] for k in range(8)],
        positions=cluster(8, box / 2),
        cell=np.eye(3) * box + rng.normal(scale=0.05, size=(3, 3)),
        pbc=True,
    )
    atom = Atoms(numbers=[elements[0]], positions=[[0.0, 0.0, 0.0]])
    return {
        "molecule": [molecule],
        "periodic": [crystal],
        "single_atom": [atom],
        "batch": [molecule, crystal, atom, molecule.copy()],
    }


def check_parity(
    student: ForceField,
    predict: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    structures: Mapping[str, list] | None = None,
) -> dict[str, Any]:
    """Compare an export's ``predict(graph) -> {energy, forces, stress}`` with the eager student.

    Returns per-case max |ΔE| (eV), max |ΔF| (eV/Å), max |Δσ| (eV/Å^3), the largest
    reference |E| and |F|, and ``passed``: each error <= 1e-5 + 1e-6 x the largest reference
    magnitude of its quantity (the relative part only matters for |E| or |F| >> 10, where
    float32 summation order alone moves the last digits).
    """
    from mlff_distiller.data.graph import atoms_to_graph

    structures = structures or parity_structures(student.elements, student.cutoff)
    dtype = next(student.parameters()).dtype
    cases = {}
    passed = True
    for name, atoms_list in structures.items():
        graph = atoms_to_graph(atoms_list, student.cutoff, dtype=dtype)
        ref = student(graph, compute_forces=True, compute_stress=True)
        got = {k: v.detach() for k, v in predict(graph).items()}
        energy_ref = ref[keys.ENERGY].detach().double()
        de = float((got[keys.ENERGY].double() - energy_ref).abs().max())
        df = float((got[keys.FORCES].double() - ref[keys.FORCES].detach().double()).abs().max())
        periodic = graph[keys.PBC].all(dim=1)
        ds = 0.0
        if bool(periodic.any()):
            diff = got[keys.STRESS].double() - ref[keys.STRESS].detach().double()
            ds = float(diff[periodic].abs().max())
        e_max = float(energy_ref.abs().max())
        f_max = float(ref[keys.FORCES].detach().abs().max()) if ref[keys.FORCES].numel() else 0.0
        s_max = float(ref[keys.STRESS].detach()[periodic].abs().max()) if ds else 0.0
        ok = (
            de <= PARITY_TOLERANCE + RELATIVE_TOLERANCE * e_max
            and df <= PARITY_TOLERANCE + RELATIVE_TOLERANCE * f_max
            and ds <= PARITY_TOLERANCE + RELATIVE_TOLERANCE * s_max
        )
        passed = passed and ok
        cases[name] = {
            "n_structures": len(atoms_list),
            "n_atoms": int(graph[keys.POSITIONS].shape[0]),
            "n_edges": int(graph[keys.EDGE_INDEX].shape[1]),
            "max_abs_energy_error_ev": de,
            "max_abs_force_error_ev_per_a": df,
            "max_abs_stress_error_ev_per_a3": ds,
            "max_abs_energy_ev": e_max,
            "max_abs_force_ev_per_a": f_max,
            "passed": ok,
        }
    return {"tolerance": PARITY_TOLERANCE, "relative_tolerance": RELATIVE_TOLERANCE,
            "passed": passed, "cases": cases}


__all__ = [
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "ExportableStudent",
    "LoadedExport",
    "check_parity",
    "export_metadata",
    "graph_args",
    "pad_empty_edges",
    "parity_structures",
]


def with_scriptable_torch(fn: Callable) -> Callable:
    """Run ``fn`` with torch's own ``index_select`` / ``select`` in place.

    torch_geometric (imported by the sevenn teacher) replaces both with Python wrappers
    that TorchScript cannot compile, so scripting a student, or importing metatensor (which
    scripts its operations at import), fails in any process that loaded that teacher first
    (e.g. `mlffd distill`). The originals are put back for the call only.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        patched = sys.modules.get("torch_geometric.hash_tensor")
        saved = {}
        for name in ("index_select", "select"):
            original = getattr(patched, f"_old_{name}", None)
            if original is not None:
                saved[name] = getattr(torch, name)
                setattr(torch, name, original)
        try:
            return fn(*args, **kwargs)
        finally:
            for name, function in saved.items():
                setattr(torch, name, function)

    return wrapper
