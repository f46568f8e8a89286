"""Distillation loss: per-atom energy + forces (+ stress) (+ Hessian rows), in O(1) units.

Every error is divided by a scale measured on the training data (see
:mod:`mlff_distiller.training.normalization`), so the weights compare like with like:

    L = w_E mean_s ((E_s - E*_s) / (n_s sigma_E))^2 + w_F mean_{i,a} ((F_ia - F*_ia) / sigma_F)^2
        + w_S mean_{s periodic} ||S_s - S*_s||^2 / (9 sigma_S^2)
        + w_H mean_{rows r, own coords b} ((H_rb - H*_rb) / sigma_H)^2

Each term is returned as a *sum* and a *count* so data-parallel ranks can normalise by the
global count (the gradient then equals single-process training on the global batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mlff_distiller import keys


@dataclass(frozen=True)
class LossScales:
    """Scales that make each term O(1): energy per atom (eV), forces (eV/Å), stress (eV/Å^3),
    Hessian (eV/Å^2)."""

    energy: float = 1.0
    forces: float = 1.0
    stress: float = 1.0
    hessian: float = 1.0


@dataclass(frozen=True)
class LossWeights:
    energy: float = 1.0
    forces: float = 10.0
    stress: float = 1.0
    hessian: float = 0.0


def student_hessian_rows(
    forces: Tensor, positions: Tensor, row_index: Tensor, batch: Tensor
) -> Tensor:
    """Rows of the student's Hessian by double backward: (R,) flat coordinates -> (R, 3N).

    H[c, :] = -dF_c/dx. The Hessian of a batch is block-diagonal over structures, so the
    j-th sampled row of every structure is taken in one backward pass (their sum) and
    separated by masking each row to its own structure's coordinates. ``forces`` must have
    been computed with ``create_graph=True`` from ``positions``.

    Args:
        forces: (N, 3) eV/Å, differentiable w.r.t. ``positions``.
        positions: (N, 3) Å, the leaf the forces were differentiated against.
        row_index: (R,) int64 flat coordinates 3 * atom + axis.
        batch: (N,) structure index of each atom.
    """
    n_coords = positions.numel()
    row_structure = batch[torch.div(row_index, 3, rounding_mode="floor")]  # (R,)
    coord_structure = batch.repeat_interleave(3)  # (3N,)
    # rank of each row among its structure's rows (rows of one structure need separate passes)
    rank = torch.zeros_like(row_index)
    counts: dict[int, int] = {}
    for r, s in enumerate(row_structure.tolist()):
        rank[r] = counts.get(s, 0)
        counts[s] = counts.get(s, 0) + 1
    rows = forces.new_zeros(row_index.shape[0], n_coords)
    flat_forces = forces.reshape(-1)
    for j in range(int(rank.max().item()) + 1 if len(rank) else 0):
        selected = torch.nonzero(rank == j).squeeze(1)
        (grad,) = torch.autograd.grad(
            flat_forces[row_index[selected]].sum(), positions, create_graph=True
        )
        summed = -grad.reshape(-1)  # (3N,) sum of the selected rows
        own = coord_structure.unsqueeze(0) == row_structure[selected].unsqueeze(1)
        rows = rows.index_put((selected,), summed.unsqueeze(0) * own.to(summed.dtype))
    return rows


def loss_terms(
    prediction: dict[str, Tensor],
    batch: dict[str, Tensor],
    scales: LossScales,
    weights: LossWeights,
    student_rows: Tensor | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-term (sum of squared normalised errors, number of elements averaged over).

    ``loss = sum_t weight_t * sum_t / count_t`` (see :func:`combine`).
    """
    terms: dict[str, tuple[Tensor, Tensor]] = {}
    n_atoms = batch[keys.NUM_ATOMS].to(prediction[keys.ENERGY].dtype)
    one = prediction[keys.ENERGY].new_ones(())
    if weights.energy > 0:
        err = (prediction[keys.ENERGY] - batch[keys.ENERGY]) / n_atoms / scales.energy
        terms["energy"] = ((err**2).sum(), one * err.numel())
    if weights.forces > 0:
        err = (prediction[keys.FORCES] - batch[keys.FORCES]) / scales.forces
        terms["forces"] = ((err**2).sum(), one * err.numel())
    if weights.stress > 0 and keys.STRESS in batch and keys.STRESS in prediction:
        periodic = batch[keys.PBC].all(dim=1)
        err = (prediction[keys.STRESS] - batch[keys.STRESS])[periodic] / scales.stress
        terms["stress"] = ((err**2).sum(), one * err.numel())
    if weights.hessian > 0 and student_rows is not None:
        teacher = batch[keys.HESSIAN_ROWS]
        row_structure = batch[keys.BATCH][torch.div(batch[keys.HESSIAN_ROW_INDEX], 3,
                                                    rounding_mode="floor")]
        own = (batch[keys.BATCH].repeat_interleave(3).unsqueeze(0)
               == row_structure.unsqueeze(1)).to(teacher.dtype)
        err = (student_rows - teacher) * own / scales.hessian
        terms["hessian"] = ((err**2).sum(), own.sum())
    return terms


def combine(
    terms: dict[str, tuple[Tensor, Tensor]], weights: LossWeights,
    counts: dict[str, Tensor] | None = None,
) -> Tensor:
    """Weighted loss from :func:`loss_terms`; ``counts`` overrides the denominators (global
    counts under data parallelism)."""
    total = None
    for name, (value, count) in terms.items():
        denominator = counts[name] if counts is not None else count
        term = getattr(weights, name) * value / denominator.clamp_min(1)
        total = term if total is None else total + term
    assert total is not None, "no loss terms: weights validated to be non-zero"
    return total


def batch_errors(prediction: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Sums for MAE/RMSE metrics over a batch (detached, float64).

    Keys: ``n_structures``, ``n_force_components``, ``energy_abs_per_atom`` (eV/atom),
    ``energy_sq_per_atom``, ``force_abs`` (eV/Å), ``force_sq``.
    """
    n_atoms = batch[keys.NUM_ATOMS].double()
    e_err = (prediction[keys.ENERGY].detach().double() - batch[keys.ENERGY].double()) / n_atoms
    f_err = prediction[keys.FORCES].detach().double() - batch[keys.FORCES].double()
    return {
        "n_structures": torch.tensor(float(e_err.numel()), dtype=torch.float64),
        "n_force_components": torch.tensor(float(f_err.numel()), dtype=torch.float64),
        "energy_abs_per_atom": e_err.abs().sum(),
        "energy_sq_per_atom": (e_err**2).sum(),
        "force_abs": f_err.abs().sum(),
        "force_sq": (f_err**2).sum(),
    }


def summarize_errors(sums: dict[str, float]) -> dict[str, float]:
    """MAE/RMSE from accumulated :func:`batch_errors` sums."""
    ns = max(sums["n_structures"], 1.0)
    nf = max(sums["n_force_components"], 1.0)
    out = {
        "energy_mae_per_atom": sums["energy_abs_per_atom"] / ns,
        "energy_rmse_per_atom": (sums["energy_sq_per_atom"] / ns) ** 0.5,
        "force_mae": sums["force_abs"] / nf,
        "force_rmse": (sums["force_sq"] / nf) ** 0.5,
    }
    if sums.get("n_hessian", 0) > 0:
        out["hessian_rmse"] = (sums["hessian_sq"] / sums["n_hessian"]) ** 0.5  # eV/Å^2
    return out
