"""Narrow students are compiled with their bias adds outside the matrix products."""

from __future__ import annotations

import uuid

import numpy as np
import torch
from ase.build import molecule
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from mlff_distiller.md import bias_adds, fast, program_cache
from mlff_distiller.models.presets import PRESETS
from tests.conftest import perturbed_student


def _count(graph: torch.fx.Graph, target) -> int:
    return sum(node.op == "call_function" and node.target is target for node in graph.nodes)


def test_plain_addmm_becomes_a_product_and_an_add_with_the_same_result():
    aten = torch.ops.aten
    layer = nn.Linear(6, 4).double()

    def f(x, w, b):
        return torch.nn.functional.silu(layer(x)) + torch.addmm(b, x, w, beta=2.0)

    x = torch.randn(5, 6, dtype=torch.float64)
    w, b = torch.randn(6, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    traced = make_fx(f)(x, w, b)
    expected = traced(x, w, b)
    assert _count(traced.graph, aten.addmm.default) == 2

    bias_adds.UnfuseBiasAdds()(traced.graph)
    traced.recompile()

    assert _count(traced.graph, aten.addmm.default) == 1  # the scaled one is kept
    assert _count(traced.graph, aten.mm.default) == 1
    torch.testing.assert_close(traced(x, w, b), expected, rtol=1e-14, atol=1e-14)


def test_the_rule_unfuses_the_narrow_presets_only():
    assert bias_adds.unfuses_bias_adds(PRESETS["tiny"].hidden)
    assert bias_adds.unfuses_bias_adds(PRESETS["ultra-tiny"].hidden)
    assert not bias_adds.unfuses_bias_adds(PRESETS["original"].hidden)


def test_a_narrow_students_program_is_built_with_the_pass_and_equals_the_eager_step(
        monkeypatch):
    """The pass runs while the program is built (a fresh uuid keeps Inductor's own caches
    from skipping it), rewrites the student's biased layers, and the program's step equals
    the eager VerletStep."""
    rewritten = []
    token = uuid.uuid4().hex

    class Recording(bias_adds.UnfuseBiasAdds):
        def __call__(self, graph):
            before = _count(graph, torch.ops.aten.addmm.default)
            super().__call__(graph)
            rewritten.append(before - _count(graph, torch.ops.aten.addmm.default))

        def uuid(self):
            return super().uuid() + token

    monkeypatch.setattr(bias_adds, "UnfuseBiasAdds", Recording)
    monkeypatch.setenv(program_cache.CACHE_ENV, "off")
    model = perturbed_student("tiny").float()
    assert bias_adds.unfuses_bias_adds(model.energy_model.hidden)
    compiled = fast.CompiledEnergyAndForces(fast.FastForceField(model))
    atoms = molecule("CH3CH2OH")
    positions = torch.tensor(atoms.positions)
    species = compiled.fast.species(torch.tensor(atoms.numbers))
    i, j = np.triu_indices(len(atoms), 1)
    pairs = torch.tensor(np.stack([i, j]))

    program = compiled.program(False, positions.float())
    inputs = compiled.single_point_inputs(positions, species, pairs, None)
    inputs[1] = 0.01 * torch.randn(len(atoms), 3, dtype=torch.float64)  # momenta
    inputs[4] = torch.tensor([0.25, 0.5], dtype=torch.float64)  # (dt/2, dt)
    got = program(inputs)
    expected = fast.VerletStep(compiled.fast)(*inputs)

    # biased linear layers of tiny: shared filter, one context net (the first is a
    # table) and two gate MLPs of two layers each, the readout's first layer
    assert sum(rewritten) == 8
    for value, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(value, reference.detach(), rtol=1e-5, atol=1e-5)

