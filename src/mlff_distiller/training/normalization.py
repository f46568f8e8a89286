"""Energy references and loss scales fitted on the training split, before training.

Per-element references e_Z (eV) solve the least-squares problem
    min_e sum_s (E_s - sum_Z n_sZ e_Z)^2
over training structures (minimum-norm solution when compositions are collinear). The
network then learns what is left, scaled by the force RMS sigma_F (eV/Å): both the
per-atom residual energy and the forces are O(1) in those units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mlff_distiller import keys
from mlff_distiller.training.loss import LossScales


def fit_element_energies(
    graphs: Sequence[dict[str, Tensor]], elements: Sequence[int]
) -> np.ndarray:
    """Least-squares per-element energies (len(elements),) in eV."""
    column = {int(z): k for k, z in enumerate(elements)}
    counts = np.zeros((len(graphs), len(elements)))
    energies = np.zeros(len(graphs))
    for s, g in enumerate(graphs):
        numbers, n = np.unique(g[keys.ATOMIC_NUMBERS].numpy(), return_counts=True)
        for z, c in zip(numbers.tolist(), n.tolist(), strict=True):
            counts[s, column[z]] = c
        energies[s] = float(g[keys.ENERGY].double().sum())
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return solution


#: a structure whose RMS force exceeds this multiple of the median structure's is a label
#: outlier for the loss scales (in the organic set the largest real ratio is about 30)
FORCE_OUTLIER_FACTOR = 100.0


def force_outliers(graphs: Sequence[dict[str, Tensor]],
                   factor: float = FORCE_OUTLIER_FACTOR) -> list[int]:
    """Positions in ``graphs`` of structures whose RMS force component is more than
    ``factor`` times the median over structures (none when the median is 0)."""
    rms = np.array([float(g[keys.FORCES].double().pow(2).mean().sqrt()) if g[keys.FORCES].numel()
                    else 0.0 for g in graphs])
    median = float(np.median(rms)) if len(rms) else 0.0
    if median <= 0:
        return []
    return np.flatnonzero(rms > factor * median).tolist()


def fit_scales(
    graphs: Sequence[dict[str, Tensor]], elements: Sequence[int], element_energies: np.ndarray,
    exclude: Sequence[int] = (),
) -> LossScales:
    """Scales of the loss terms measured on the training split, without the structures at
    positions ``exclude`` (label outliers, see :func:`force_outliers`).

    ``forces``: RMS force component; ``energy``: the same (the network's output unit), or
    the residual per-atom energy RMS when all forces vanish; ``stress``: RMS stress component
    of periodic structures; ``hessian``: RMS of the stored teacher Hessian-row entries.
    """
    index = {int(z): k for k, z in enumerate(elements)}
    force_sq = force_n = 0.0
    resid_sq = 0.0
    stress_sq = stress_n = 0.0
    hess_sq = hess_n = 0.0
    skip = set(exclude)
    graphs = [g for k, g in enumerate(graphs) if k not in skip]
    for g in graphs:
        forces = g[keys.FORCES].double()
        force_sq += float((forces**2).sum())
        force_n += forces.numel()
        z = g[keys.ATOMIC_NUMBERS].tolist()
        reference = sum(element_energies[index[int(a)]] for a in z)
        resid_sq += ((float(g[keys.ENERGY].double().sum()) - reference) / len(z)) ** 2
        if keys.STRESS in g and bool(g[keys.PBC].all()):
            stress = g[keys.STRESS].double()
            stress_sq += float((stress**2).sum())
            stress_n += stress.numel()
        if keys.HESSIAN_ROWS in g:
            rows = g[keys.HESSIAN_ROWS].double()
            hess_sq += float((rows**2).sum())
            hess_n += rows.numel()
    force_rms = (force_sq / max(force_n, 1)) ** 0.5
    resid_rms = (resid_sq / max(len(graphs), 1)) ** 0.5
    energy = force_rms if force_rms > 1e-6 else (resid_rms if resid_rms > 1e-9 else 1.0)
    return LossScales(
        energy=energy,
        forces=force_rms if force_rms > 1e-6 else 1.0,
        stress=(stress_sq / stress_n) ** 0.5 if stress_n and stress_sq > 0 else 1.0,
        hessian=(hess_sq / hess_n) ** 0.5 if hess_n and hess_sq > 0 else 1.0,
    )


def apply_normalization(model, element_energies: np.ndarray, energy_scale: float) -> None:
    """Store the references (eV) and the network's energy unit (eV) in the student."""
    energy_model = model.energy_model
    with torch.no_grad():
        energy_model.element_energies.copy_(
            torch.as_tensor(element_energies, dtype=energy_model.element_energies.dtype)
        )
        energy_model.energy_scale.fill_(float(energy_scale))
