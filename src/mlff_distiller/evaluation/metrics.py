"""Accuracy metrics of a student against its teacher: pure functions on numpy arrays.

Conventions: ``pred`` is the student, ``ref`` the teacher. Forces are (N, 3) eV/Å, energies
(B,) eV. Component metrics (R², RMSE, MAE, max error) pool the 3N Cartesian components;
"error norm" metrics use the per-atom vector error |F̂_i - F_i|. Undefined values (an empty
selection, a constant reference) are ``nan``; :func:`json_ready` turns them into ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from mlff_distiller.errors import InputError

PERCENTILES = (50, 90, 95, 99)
#: default |F_teacher| bin edges (eV/Å) for error-vs-magnitude; the last bin is open
FORCE_BINS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, math.inf)


def _pair(pred, ref, name: str, ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise InputError(f"{name}: prediction shape {pred.shape} != reference shape {ref.shape}")
    if ndim is not None and pred.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-d array, got shape {pred.shape}")
    if ndim == 2 and pred.shape[1] != 3:
        raise InputError(f"{name}: expected vectors of shape (N, 3), got {pred.shape}")
    return pred, ref


def r2_score(pred, ref) -> float:
    """Coefficient of determination over all components.

    R² = 1 - Σ (ŷ - y)² / Σ (y - ȳ)², with ȳ the mean of all reference components.
    ``nan`` when the reference is constant.
    """
    pred, ref = _pair(pred, ref, "r2_score")
    ss_tot = float(np.sum((ref - ref.mean()) ** 2)) if ref.size else 0.0
    if ss_tot == 0.0:
        return math.nan
    return 1.0 - float(np.sum((pred - ref) ** 2)) / ss_tot


def rmse(pred, ref) -> float:
    """Root-mean-square error over all components: sqrt(mean((ŷ - y)²))."""
    pred, ref = _pair(pred, ref, "rmse")
    return float(np.sqrt(np.mean((pred - ref) ** 2))) if pred.size else math.nan


def mae(pred, ref) -> float:
    """Mean absolute error over all components: mean(|ŷ - y|)."""
    pred, ref = _pair(pred, ref, "mae")
    return float(np.mean(np.abs(pred - ref))) if pred.size else math.nan


def max_abs_error(pred, ref) -> float:
    """Largest absolute component error: max |ŷ - y|."""
    pred, ref = _pair(pred, ref, "max_abs_error")
    return float(np.max(np.abs(pred - ref))) if pred.size else math.nan


def error_norms(pred_forces, ref_forces) -> np.ndarray:
    """Per-atom force-error norm e_i = |F̂_i - F_i| (N,) eV/Å."""
    pred, ref = _pair(pred_forces, ref_forces, "error_norms", ndim=2)
    return np.linalg.norm(pred - ref, axis=1)


def error_percentiles(norms, percentiles: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """Percentiles (linear interpolation, numpy's default) of per-atom error norms.

    Returns ``{"p50": ..., "p90": ..., ...}`` in the unit of ``norms``.
    """
    norms = np.asarray(norms, dtype=np.float64)
    if norms.size == 0:
        return {f"p{p:g}": math.nan for p in percentiles}
    values = np.percentile(norms, list(percentiles))
    return {f"p{p:g}": float(v) for p, v in zip(percentiles, values, strict=True)}


def angular_errors(pred_forces, ref_forces, min_ref_norm: float = 0.1) -> np.ndarray:
    """Angle (degrees) between student and teacher force vectors, per atom.

    θ_i = atan2(|F̂_i × F_i|, F̂_i · F_i), which is accurate near 0° and 180° where arccos is
    not. Atoms whose teacher force |F_i| < ``min_ref_norm`` (eV/Å) are skipped: their
    direction is noise. A zero student force has no direction; it counts as 90°, the
    expected angle of a random direction.

    Returns:
        (M,) angles in [0, 180] for the M atoms kept.
    """
    pred, ref = _pair(pred_forces, ref_forces, "angular_errors", ndim=2)
    if min_ref_norm < 0:
        raise InputError(f"min_ref_norm must be >= 0 eV/Å, got {min_ref_norm}")
    ref_norm = np.linalg.norm(ref, axis=1)
    keep = (ref_norm >= min_ref_norm) & (ref_norm > 0)
    pred, ref = pred[keep], ref[keep]
    cross = np.linalg.norm(np.cross(pred, ref), axis=1)
    dot = np.einsum("ij,ij->i", pred, ref)
    angles = np.degrees(np.arctan2(cross, dot))
    angles[np.linalg.norm(pred, axis=1) == 0] = 90.0
    return angles


def error_by_force_magnitude(
    pred_forces, ref_forces, edges: Sequence[float] = FORCE_BINS
) -> list[dict]:
    """Force errors binned by the teacher force magnitude |F_i|.

    For each bin [lo, hi): count, mean error norm mean(e_i) (eV/Å), and the relative error
    mean(e_i) / mean(|F_i|) (dimensionless; ``nan`` where mean(|F_i|) = 0).
    """
    pred, ref = _pair(pred_forces, ref_forces, "error_by_force_magnitude", ndim=2)
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)):
        raise InputError(f"force bin edges must increase strictly, got {edges}")
    err = np.linalg.norm(pred - ref, axis=1)
    mag = np.linalg.norm(ref, axis=1)
    rows = []
    for lo, hi in pairwise(edges):
        sel = (mag >= lo) & (mag < hi)
        n = int(sel.sum())
        mean_err = float(err[sel].mean()) if n else math.nan
        mean_mag = float(mag[sel].mean()) if n else math.nan
        rel = mean_err / mean_mag if n and mean_mag > 0 else math.nan
        rows.append({"lo": lo, "hi": hi, "count": n, "mean_error": mean_err,
                     "mean_magnitude": mean_mag, "relative_error": rel})
    return rows


def force_metrics(pred_forces, ref_forces, min_ref_norm: float = 0.1) -> dict:
    """All force metrics of one set of atoms (see the module docstring for conventions)."""
    pred, ref = _pair(pred_forces, ref_forces, "force_metrics", ndim=2)
    norms = error_norms(pred, ref)
    angles = angular_errors(pred, ref, min_ref_norm)
    return {
        "n_atoms": int(len(pred)),
        "r2": r2_score(pred, ref),
        "rmse": rmse(pred, ref),
        "mae": mae(pred, ref),
        "max_abs_error": max_abs_error(pred, ref),
        "error_norm_mean": float(norms.mean()) if norms.size else math.nan,
        "error_norm_max": float(norms.max()) if norms.size else math.nan,
        "error_norm_percentiles": error_percentiles(norms),
        "angular_error_mean_deg": float(angles.mean()) if angles.size else math.nan,
        "angular_error_median_deg": float(np.median(angles)) if angles.size else math.nan,
        "angular_min_ref_norm": float(min_ref_norm),
        "angular_n_atoms": int(angles.size),
    }


def grouped_force_metrics(pred_forces, ref_forces, groups) -> dict[int, dict]:
    """Force R², RMSE, MAE and mean error norm per group label (element, molecule...).

    Args:
        groups: (N,) integer label per atom.
    """
    pred, ref = _pair(pred_forces, ref_forces, "grouped_force_metrics", ndim=2)
    groups = np.asarray(groups)
    if groups.shape != (len(pred),):
        raise InputError(f"groups: expected shape ({len(pred)},), got {groups.shape}")
    out = {}
    for g in np.unique(groups):
        sel = groups == g
        out[int(g)] = {
            "n_atoms": int(sel.sum()),
            "r2": r2_score(pred[sel], ref[sel]),
            "rmse": rmse(pred[sel], ref[sel]),
            "mae": mae(pred[sel], ref[sel]),
            "error_norm_mean": float(error_norms(pred[sel], ref[sel]).mean()),
        }
    return out


def energy_metrics(pred_energy, ref_energy, n_atoms) -> dict:
    """Energy errors per structure (eV) and per atom (eV/atom).

    MAE per structure = mean |Ê_b - E_b|; MAE per atom = mean |Ê_b - E_b| / n_b.
    """
    pred, ref = _pair(pred_energy, ref_energy, "energy_metrics", ndim=1)
    n = np.asarray(n_atoms, dtype=np.float64)
    if n.shape != pred.shape or np.any(n <= 0):
        raise InputError(f"n_atoms: expected {pred.shape} positive counts, got {n.shape}")
    per_atom_err = (pred - ref) / n
    return {
        "n_structures": int(len(pred)),
        "mae_per_structure": mae(pred, ref),
        "rmse_per_structure": rmse(pred, ref),
        "mae_per_atom": float(np.mean(np.abs(per_atom_err))) if pred.size else math.nan,
        "rmse_per_atom": float(np.sqrt(np.mean(per_atom_err**2))) if pred.size else math.nan,
        "max_abs_error_per_structure": max_abs_error(pred, ref),
        "r2": r2_score(pred, ref),
    }


def relative_energy_metrics(pred_energy, ref_energy, n_atoms, molecule_ids) -> dict:
    """Energy errors once each molecule's mean error is removed (eV/atom).

    An unseen molecule's total energy can carry a constant offset that no MD run or
    conformer comparison sees; what matters there is the energy *differences* between its
    structures. Per molecule m with at least 2 structures, the residual of structure b is
    ``(Ê_b - E_b) - mean_{b' in m}(Ê_b' - E_b')``; MAE and RMSE per atom are over those
    residuals / n_b. ``offset_mae_per_atom`` is the mean |offset| / n of the molecules.
    """
    pred, ref = _pair(pred_energy, ref_energy, "relative_energy_metrics", ndim=1)
    n = np.asarray(n_atoms, dtype=np.float64)
    ids = np.asarray(molecule_ids)
    if n.shape != pred.shape or ids.shape != pred.shape:
        raise InputError(f"n_atoms and molecule_ids: expected shape {pred.shape}, "
                         f"got {n.shape} and {ids.shape}")
    residuals, offsets = [], []
    for mol in np.unique(ids):
        sel = ids == mol
        if sel.sum() < 2:
            continue
        err = pred[sel] - ref[sel]
        residuals.append((err - err.mean()) / n[sel])
        offsets.append(abs(err.mean()) / n[sel].mean())
    r = np.concatenate(residuals) if residuals else np.zeros(0)
    return {
        "n_molecules": len(offsets),
        "n_structures": int(r.size),
        "mae_per_atom": float(np.mean(np.abs(r))) if r.size else math.nan,
        "rmse_per_atom": float(np.sqrt(np.mean(r**2))) if r.size else math.nan,
        "offset_mae_per_atom": float(np.mean(offsets)) if offsets else math.nan,
    }


def spearman(x, y) -> float:
    """Spearman rank correlation: Pearson correlation of the ranks (ties get mean ranks).

    ρ = cov(rank x, rank y) / (σ_rank x σ_rank y); ``nan`` when either is constant or n < 2.
    """
    x, y = _pair(x, y, "spearman", ndim=1)
    if len(x) < 2:
        return math.nan
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(np.sum(rx**2) * np.sum(ry**2)))
    return float(np.sum(rx * ry) / denom) if denom > 0 else math.nan


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; tied values share the mean of their ranks."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def pairwise_order_agreement(x, y, tie_tolerance: float = 0.0) -> float:
    """Fraction of pairs (i < j) ordered the same way by ``x`` and ``y``.

    Pairs whose reference values differ by at most ``tie_tolerance`` are skipped (their
    order is noise); a tie in ``x`` counts as wrong. ``nan`` when no pair is left.
    """
    x, y = _pair(x, y, "pairwise_order_agreement", ndim=1)
    i, j = np.triu_indices(len(x), k=1)
    dy = np.sign(y[j] - y[i])
    keep = np.abs(y[j] - y[i]) > tie_tolerance
    if not keep.any():
        return math.nan
    return float(np.mean(np.sign(x[j] - x[i])[keep] == dy[keep]))


def conformer_ranking(pred_energy, ref_energy, molecule_ids, min_conformers: int = 3) -> dict:
    """Does the student order each molecule's conformers like the teacher?

    Per molecule with at least ``min_conformers`` structures: Spearman ρ and pairwise order
    agreement of the energies. Returns the per-molecule values and their mean and median.
    """
    pred, ref = _pair(pred_energy, ref_energy, "conformer_ranking", ndim=1)
    ids = np.asarray(molecule_ids)
    if ids.shape != pred.shape:
        raise InputError(f"molecule_ids: expected shape {pred.shape}, got {ids.shape}")
    per_molecule = {}
    for m in np.unique(ids):
        sel = ids == m
        if sel.sum() < min_conformers:
            continue
        per_molecule[int(m)] = {
            "n_conformers": int(sel.sum()),
            "spearman": spearman(pred[sel], ref[sel]),
            "pairwise_agreement": pairwise_order_agreement(pred[sel], ref[sel]),
        }
    rhos = np.array([v["spearman"] for v in per_molecule.values()], dtype=float)
    rhos = rhos[np.isfinite(rhos)]
    return {
        "min_conformers": int(min_conformers),
        "n_molecules": len(per_molecule),
        "spearman_mean": float(rhos.mean()) if rhos.size else math.nan,
        "spearman_median": float(np.median(rhos)) if rhos.size else math.nan,
        "per_molecule": per_molecule,
    }


def json_ready(obj):
    """Recursively convert numpy scalars to Python and non-finite floats to ``None``."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
