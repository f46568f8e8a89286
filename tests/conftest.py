"""Shared fixtures: one torch thread per test, small float64 students with non-trivial
weights."""

from __future__ import annotations

import pytest
import torch

from mlff_distiller import build_student


def perturbed_student(preset: str = "tiny", elements=(1, 6, 7, 8, 14), seed: int = 0,
                      cutoff: float | None = None):
    """A float64 student whose weights and energy references are far from initial values,
    so physics checks exercise every block (a fresh model is too close to trivial);
    ``cutoff`` in Å overrides the preset's."""
    model = build_student(preset, elements=elements, seed=seed, cutoff=cutoff).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        refs = model.energy_model.element_energies
        refs.copy_(-torch.arange(1, len(refs) + 1, dtype=refs.dtype) * 2.5)
        model.energy_model.energy_scale.fill_(0.7)
    return model.eval()


@pytest.fixture(autouse=True, scope="session")
def _private_program_cache(tmp_path_factory):
    """compile=True caches built programs; tests use a fresh folder, never the user's."""
    from mlff_distiller.md.program_cache import CACHE_ENV

    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("program-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny graphs gain nothing from more threads, and on a shared 2-core CPU oversubscribed
    threads slow teacher and student evaluations by an order of magnitude."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def student64():
    return perturbed_student("tiny")
