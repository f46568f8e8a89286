"""Float32 students with non-trivial weights for export tests, and a shared ONNX export."""

from __future__ import annotations

import pytest
import torch

from mlff_distiller import build_student


def student32(preset: str = "ultra-tiny", elements=(1, 6, 7, 8, 14), seed: int = 0):
    """Float32 student with weights perturbed by 0.1 * sqrt(32 / hidden) (so forces stay at
    a few eV/Å for every preset) and element references of -2.5 eV per element index."""
    model = build_student(preset, elements=elements, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    scale = 0.1 * (32 / model.config.hidden) ** 0.5
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        refs = model.energy_model.element_energies
        refs.copy_(-torch.arange(1, len(refs) + 1, dtype=refs.dtype) * 2.5)
    model = model.eval()
    model.checkpoint_metadata = {"teacher": "sevennet-0", "dataset_hash": "abc123"}
    return model


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory):
    """(student, path, export result) of one race-free ONNX export, shared by tests."""
    from mlff_distiller.export import export_student

    model = student32("ultra-tiny")
    path = tmp_path_factory.mktemp("onnx") / "student.onnx"
    return model, path, export_student(model, "onnx", path)
