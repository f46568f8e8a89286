"""Trace a module whose forward takes an autograd gradient (energy -> forces) into a
``torch.export`` program, for ahead-of-time compilation (ONNX, AOTInductor).

``torch.export`` cannot trace ``torch.autograd.grad`` directly, so the module is first traced
with ``make_fx(tracing_mode="symbolic")``, which records the backward pass as ordinary aten
ops (``*_backward`` ops decomposed, ``det`` of 3x3 cells written out), then exported with the
given dynamic dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.export import ExportedProgram


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


def export_with_gradients(module: nn.Module, args: Sequence[Tensor],
                          dynamic_shapes: Sequence[dict]) -> ExportedProgram:
    """``module`` (parameters frozen, eval mode) traced on ``args`` into an ExportedProgram.

    Args:
        module: its forward may call ``torch.autograd.grad``.
        args: example inputs; give every dynamic dimension a size of 2 or more, or tracing
            specialises it to 0 or 1.
        dynamic_shapes: one ``{dim: torch.export.Dim}`` per argument, as for torch.export.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    args = tuple(args)
    graph_module = make_fx(
        module,
        tracing_mode="symbolic",
        decomposition_table=_decompositions(),
        _allow_non_fake_inputs=True,
    )(*args)
    return torch.export.export(graph_module, args, dynamic_shapes=tuple(dynamic_shapes),
                               strict=False)


__all__ = ["export_with_gradients"]
