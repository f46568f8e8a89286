"""Where a compiled student adds its linear layers' biases.

Inductor turns each ``nn.Linear`` with a bias into one ``addmm`` call on a CPU (and folds
other pairs of a matrix product and an add into it). The call copies the added term into
its output (an expand and a copy, each a dispatched aten operation) before multiplying
into it. :class:`UnfuseBiasAdds` rewrites each back into a product and an add, which
Inductor fuses into the elementwise kernel that follows (the SiLU, the gate products).
That pays for narrow students, whose products are small enough for the copy's fixed cost
to show, and costs wide ones a little; :func:`unfuses_bias_adds` says for which students.

Measured (``benchmarks/md_bias_adds.py``, session 27, 2 cores, 1 thread, the demo's
students, ``StudentVerlet`` steps of both builds alternating in blocks of 200, median
ratio of 10 rounds, time with ``addmm`` over time without, at 9 / 20 / 40 / 76 atoms):
``ultra-tiny`` (F = 32) 1.16 / 1.09 / 1.08 / 0.99, ``tiny`` (F = 64) 1.07 / 1.03 / 0.99 /
0.95, ``original`` (F = 128) 1.02 / 1.00 / 0.97 / 0.93. The compiled step alone on fixed
inputs (a throwaway A/B script, 15-25 rounds) gave ``tiny`` 1.11 / 1.03-1.05 / 1.00 /
0.98-1.03 and ``original`` 1.04 / 0.96-0.98 / 0.97 at 9 / 20 / 40 atoms. Forces and
energies were bitwise equal both ways.
"""

from __future__ import annotations

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass

UNFUSE_MAX_HIDDEN = 64  # students up to this many features per atom add biases separately


def unfuses_bias_adds(hidden: int) -> bool:
    """Whether a student of ``hidden`` features per atom is compiled with
    :class:`UnfuseBiasAdds` (narrow ones are; see the module's measurements)."""
    return hidden <= UNFUSE_MAX_HIDDEN


class UnfuseBiasAdds(CustomGraphPass):
    """Inductor post-grad pass: ``addmm(bias, x, w)`` -> ``mm(x, w) + bias``.

    Runs after Inductor's own patterns (``post_grad_custom_post_pass``), so the fused form
    is not rebuilt. Only plain calls (beta = alpha = 1) are rewritten; the result is the
    same sum, evaluated in the following elementwise kernel.
    """

    def __call__(self, graph: torch.fx.Graph) -> None:
        aten = torch.ops.aten
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target is not aten.addmm.default:
                continue
            if node.kwargs or len(node.args) != 3:
                continue  # scaled forms (beta, alpha) keep their addmm
            bias, left, right = node.args
            with graph.inserting_before(node):
                product = graph.call_function(aten.mm.default, (left, right))
                total = graph.call_function(aten.add.Tensor, (product, bias))
            product.meta = dict(node.meta)
            total.meta = dict(node.meta)
            node.replace_all_uses_with(total)
            graph.erase_node(node)

    def uuid(self) -> str:
        """Names this pass in Inductor's caches (bump when its rewrite changes)."""
        return "mlff-distiller.unfuse-bias-adds.v1"
