"""Trace a student's force computation into a ``torch.export`` program (for ONNX and AOTI).

``torch.export`` cannot trace ``torch.autograd.grad`` directly, so the whole energy + forces
+ stress function is first traced with ``make_fx(tracing_mode="symbolic")``, which records
the backward pass as ordinary aten ops (``*_backward`` ops decomposed, ``det`` of the 3x3
cells written out), then exported with dynamic atoms / edges / structures.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch.export import Dim, ExportedProgram

from mlff_distiller.export.core import ExportableStudent, graph_args, parity_structures
from mlff_distiller.models.forces import ForceField


def _det3(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``aten._linalg_det`` for (..., 3, 3): determinant by the triple product.

    The LU factors and pivots it also returns are unused by the students (placeholders).
    """
    a, b, c = matrix[..., 0, :], matrix[..., 1, :], matrix[..., 2, :]
    cross = torch.stack(
        [
            b[..., 1] * c[..., 2] - b[..., 2] * c[..., 1],
            b[..., 2] * c[..., 0] - b[..., 0] * c[..., 2],
            b[..., 0] * c[..., 1] - b[..., 1] * c[..., 0],
        ],
        dim=-1,
    )
    det = (a * cross).sum(-1)
    pivots = torch.zeros(matrix.shape[:-1], dtype=torch.int32, device=matrix.device)
    return det, matrix.clone(), pivots


def _decompositions() -> dict:
    from torch._decomp import core_aten_decompositions

    table = {op: fn for op, fn in core_aten_decompositions().items() if "backward" in str(op)}
    table[torch.ops.aten._linalg_det.default] = _det3
    return table


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
    from torch.fx.experimental.proxy_tensor import make_fx

    module = ExportableStudent(copy.deepcopy(student).eval())
    for p in module.parameters():
        p.requires_grad_(False)
    args = example_args(student)
    graph_module = make_fx(
        module,
        tracing_mode="symbolic",
        decomposition_table=_decompositions(),
        _allow_non_fake_inputs=True,
    )(*args)
    atoms, edges, structures = Dim("atoms", min=1), Dim("edges", min=1), Dim("structures", min=1)
    dynamic = ({0: atoms}, {0: atoms}, {1: edges}, {0: edges}, {0: structures}, {0: atoms})
    return torch.export.export(graph_module, args, dynamic_shapes=dynamic, strict=False)


__all__ = ["example_args", "trace_student"]
