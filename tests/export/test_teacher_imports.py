"""Exports still work after a teacher package monkeypatches torch.

torch_geometric (pulled in by sevenn) replaces ``torch.index_select`` and ``torch.select``
with Python wrappers that TorchScript cannot compile; `mlffd distill` loads the teacher and
exports the students in one process, and metatensor scripts its operations at import.
"""

from __future__ import annotations

import subprocess
import sys

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


def test_torchscript_and_metatomic_exports_after_torch_geometric(tmp_path):
    import importlib.util

    if importlib.util.find_spec("metatomic") is None:  # importing it here would be the bug
        pytest.skip("metatomic-torch is not installed (extra [metatomic])")
    pytest.importorskip("torch_geometric")
    # a fresh process, so metatensor is imported after torch_geometric, as in `mlffd distill`
    code = f"""
import torch_geometric
from mlff_distiller import build_student
from mlff_distiller.export.api import export_student
model = build_student("ultra-tiny", seed=0)
for fmt, name in (("torchscript", "s.ts"), ("metatomic", "s.pt")):
    report = export_student(model, fmt, {str(tmp_path)!r} + "/" + name)
import torch
assert torch.index_select is torch_geometric.hash_tensor._new_index_select  # patch restored
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
