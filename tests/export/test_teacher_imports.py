"""Students still script after a teacher package monkeypatches torch.

torch_geometric (pulled in by sevenn) replaces ``torch.index_select`` and ``torch.select``
with Python wrappers that TorchScript cannot compile; `mlffd distill` loads the teacher and
exports the students in one process.
"""

from __future__ import annotations

import pytest
import torch

from mlff_distiller import build_student
from mlff_distiller.md.fast import FastForceField


def test_scripting_after_torch_geometric_import():
    pytest.importorskip("torch_geometric")
    import torch_geometric  # noqa: F401 - the import is the point: it patches torch

    model = build_student("ultra-tiny")
    torch.jit.script(model)
    torch.jit.script(FastForceField(model))
