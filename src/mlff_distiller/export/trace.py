"""Trace a student's force computation into a ``torch.export`` program (for ONNX and AOTI):
energy + forces + stress with dynamic atoms / edges / structures
(:func:`mlff_distiller.models.tracing.export_with_gradients`).
"""

from __future__ import annotations

import copy

from torch import Tensor
from torch.export import Dim, ExportedProgram

from mlff_distiller.export.core import ExportableStudent, graph_args, parity_structures
from mlff_distiller.models.forces import ForceField
from mlff_distiller.models.tracing import export_with_gradients


def example_args(student: ForceField) -> tuple[Tensor, ...]:
    """A batch (4 structures, N > 1, E > 1) so no dynamic dimension specialises to 0 or 1."""
    from mlff_distiller.data.graph import atoms_to_graph

    batch = parity_structures(student.elements, student.cutoff)["batch"]
    dtype = next(student.parameters()).dtype
    return graph_args(atoms_to_graph(batch, student.cutoff, dtype=dtype))


def trace_student(student: ForceField) -> ExportedProgram:
    """The student's (energy, forces, stress) as an ExportedProgram with dynamic N, E, B.

    Edges must be >= 1 at run time (see :func:`core.pad_empty_edges`).
    """
    module = ExportableStudent(copy.deepcopy(student).eval())
    for p in module.parameters():
        p.requires_grad_(False)
    atoms, edges, structures = Dim("atoms", min=1), Dim("edges", min=1), Dim("structures", min=1)
    dynamic = ({0: atoms}, {0: atoms}, {1: edges}, {0: edges}, {0: structures}, {0: atoms})
    return export_with_gradients(module, example_args(student), dynamic)


__all__ = ["example_args", "trace_student"]
