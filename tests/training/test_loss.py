"""Loss pieces: exact energy references, Hessian rows by double backward."""

from __future__ import annotations

import numpy as np
import torch

from mlff_distiller import keys
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.training.loss import student_hessian_rows
from mlff_distiller.training.normalization import (
    fit_element_energies,
    fit_scales,
    force_outliers,
)

from .helpers import make_teacher, rattled


def test_element_energies_recover_exact_references():
    structures, _ = rattled(1)
    truth = {1: -13.6, 6: -1030.0, 8: -2040.0}
    graphs = []
    for atoms in structures:
        g = atoms_to_graph(atoms, 4.0, dtype=torch.float64)
        g[keys.ENERGY] = torch.tensor([sum(truth[int(z)] for z in atoms.numbers)],
                                      dtype=torch.float64)
        g[keys.FORCES] = torch.ones(len(atoms), 3) * 0.5
        graphs.append(g)
    fitted = fit_element_energies(graphs, (1, 6, 8))
    np.testing.assert_allclose(fitted, [-13.6, -1030.0, -2040.0], atol=1e-8)
    scales = fit_scales(graphs, (1, 6, 8), fitted)
    assert abs(scales.forces - 0.5) < 1e-12 and scales.energy == scales.forces


def test_force_outliers_are_left_out_of_the_force_scale():
    """RMS forces 1, 2, 3 and one at 400x the median: that one is an outlier (factor 100),
    and the scale is the RMS of the other three; 30x the median is not an outlier."""
    structures, _ = rattled(1)
    graphs = []
    for atoms, rms in zip(structures, (1.0, 2.0, 3.0, 800.0), strict=False):
        g = atoms_to_graph(atoms, 4.0, dtype=torch.float64)
        g[keys.ENERGY] = torch.zeros(1, dtype=torch.float64)
        g[keys.FORCES] = torch.full((len(atoms), 3), rms, dtype=torch.float64)
        graphs.append(g)
    assert len(graphs) == 4 and force_outliers(graphs) == [3]
    elements = sorted({int(z) for g in graphs for z in g[keys.ATOMIC_NUMBERS]})
    energies = np.zeros(len(elements))
    scales = fit_scales(graphs, elements, energies, exclude=force_outliers(graphs))
    n = [len(g[keys.FORCES]) for g in graphs[:3]]
    expected = ((n[0] * 1 + n[1] * 4 + n[2] * 9) / sum(n)) ** 0.5
    assert abs(scales.forces - expected) < 1e-12
    assert fit_scales(graphs, elements, energies).forces > 100  # what it was without
    graphs[3][keys.FORCES] = torch.full_like(graphs[3][keys.FORCES], 60.0)
    assert force_outliers(graphs) == []


def test_hessian_rows_match_full_hessian_for_a_batch():
    teacher = make_teacher()
    structures, _ = rattled(1, names=("H2O", "CH3OH"))
    graph = atoms_to_graph(structures, teacher.cutoff, dtype=torch.float64)
    positions = graph[keys.POSITIONS].requires_grad_(True)
    teacher.train()  # create_graph for double backward
    forces = teacher(graph)[keys.FORCES]
    # two rows of the first molecule (3 atoms), three of the second: ranks differ per structure
    row_index = torch.tensor([1, 7, 9, 12, 20])
    rows = student_hessian_rows(forces, positions, row_index, graph[keys.BATCH])

    def energy(x):
        return teacher.energy_model({**graph, keys.POSITIONS: x.reshape(-1, 3)}).sum()

    full = torch.autograd.functional.hessian(energy, positions.detach().reshape(-1))
    torch.testing.assert_close(rows, full[row_index], atol=1e-9, rtol=1e-9)
    assert rows[0, 9:].abs().max() == 0  # rows stay inside their own structure
