"""Student vs teacher: relaxed geometries, conformer order, and MD structure distributions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mlff_distiller.evaluation.metrics import pairwise_order_agreement, spearman
from mlff_distiller.md.analysis import (
    bond_angles,
    bond_lengths,
    find_angles,
    find_bonds,
    histogram_overlap,
    kabsch_rmsd,
    label_of,
)
from mlff_distiller.md.runs import MDConfig, energy_of, optimise


def compare_optimisations(
    structures: Sequence[Atoms],
    groups: Sequence[str],
    student_calc,
    teacher_calc,
    config: MDConfig,
) -> dict:
    """Relax each start with both calculators and compare the minima.

    Per structure: Kabsch RMSD (Å) between the two relaxed geometries,
    ``energy_difference_eV`` = E_student(x_student) - E_teacher(x_teacher), and
    ``teacher_penalty_eV`` = E_teacher(x_student) - E_teacher(x_teacher) (how far above the
    teacher's minimum the student's minimum lies, in the teacher's energy). Per group of
    conformers (same molecule, >= 2 starts): whether every pair of relaxed energies that the
    teacher separates by more than ``config.energy_tie_meV`` keeps its order.
    """
    if len(structures) != len(groups):
        raise ValueError("one group label per structure expected")
    rows = []
    for k, (atoms, group) in enumerate(zip(structures, groups, strict=True)):
        x_s, info_s = optimise(atoms, student_calc, config)
        x_t, info_t = optimise(atoms, teacher_calc, config)
        ok = info_s["energy_eV"] is not None and info_t["energy_eV"] is not None
        e_t_at_s = energy_of(x_s, teacher_calc) if ok else math.nan
        rows.append({
            "index": k,
            "group": group,
            "formula": atoms.get_chemical_formula(),
            "student": info_s,
            "teacher": info_t,
            "rmsd_A": kabsch_rmsd(x_s.positions, x_t.positions) if ok else math.nan,
            "energy_difference_eV": (info_s["energy_eV"] - info_t["energy_eV"]) if ok
            else math.nan,
            "teacher_penalty_eV": e_t_at_s - info_t["energy_eV"] if ok else math.nan,
        })
    tie = config.energy_tie_meV / 1000.0
    ordering = {}
    for group in dict.fromkeys(groups):
        members = [r for r in rows if r["group"] == group]
        e_s = np.array([_num(r["student"]["energy_eV"]) for r in members])
        e_t = np.array([_num(r["teacher"]["energy_eV"]) for r in members])
        if len(members) < 2 or not (np.all(np.isfinite(e_s)) and np.all(np.isfinite(e_t))):
            continue
        agreement = pairwise_order_agreement(e_s, e_t, tie_tolerance=tie)
        rel_s, rel_t = e_s - e_s.min(), e_t - e_t.min()
        ordering[group] = {
            "n_conformers": len(members),
            "pairwise_agreement": agreement,
            "order_preserved": bool(agreement == 1.0) if math.isfinite(agreement) else None,
            "spearman": spearman(e_s, e_t),
            "relative_energy_mae_eV": float(np.mean(np.abs(rel_s - rel_t))),
        }
    rmsd = np.array([r["rmsd_A"] for r in rows], dtype=float)
    de = np.array([r["energy_difference_eV"] for r in rows], dtype=float)
    pen = np.array([r["teacher_penalty_eV"] for r in rows], dtype=float)
    judged = [v["order_preserved"] for v in ordering.values() if v["order_preserved"] is not None]
    return {
        "optimizer": config.optimizer.upper(),
        "fmax_eV_per_A": config.fmax,
        "structures": rows,
        "conformer_order": ordering,
        "summary": {
            "n_structures": len(rows),
            "student_converged_fraction": _frac([r["student"]["converged"] for r in rows]),
            "teacher_converged_fraction": _frac([r["teacher"]["converged"] for r in rows]),
            "rmsd_mean_A": _nanmean(rmsd),
            "rmsd_max_A": float(np.nanmax(rmsd)) if np.isfinite(rmsd).any() else math.nan,
            "energy_difference_mae_eV": _nanmean(np.abs(de)),
            "teacher_penalty_mean_eV": _nanmean(pen),
            "n_conformer_groups": len(judged),
            "conformer_order_preserved_fraction": _frac(judged),
        },
    }


def compare_distributions(
    numbers: np.ndarray,
    start_positions: np.ndarray,
    student_frames: np.ndarray,
    teacher_frames: np.ndarray,
    bond_tolerance: float = 1.2,
    bins: int = 50,
) -> dict:
    """Bond-length and angle distributions of two MD runs of the same molecule.

    Bonds and angles come from the start geometry. Overlap coefficients (see
    :func:`histogram_overlap`) per element label (``C-H``, ``H-C-O``...) and pooled, plus the
    mean bond length/angle difference student - teacher per label. Also returns the pooled
    samples (``samples``) for plotting.
    """
    bonds = find_bonds(numbers, start_positions, bond_tolerance)
    angles = find_angles(bonds, len(numbers))
    out: dict = {"bonds": {}, "angles": {}, "samples": {}}
    for kind, index, fn in (("bonds", bonds, bond_lengths), ("angles", angles, bond_angles)):
        if len(index) == 0 or len(student_frames) == 0 or len(teacher_frames) == 0:
            out[f"{kind}_overlap"] = math.nan
            continue
        s = fn(student_frames, index)  # (T, b)
        t = fn(teacher_frames, index)
        labels = [label_of(numbers, idx) for idx in index]
        for label in dict.fromkeys(labels):
            cols = [c for c, lab in enumerate(labels) if lab == label]
            out[kind][label] = {
                "count": len(cols),
                "overlap": histogram_overlap(s[:, cols], t[:, cols], bins),
                "mean_difference": float(s[:, cols].mean() - t[:, cols].mean()),
            }
        out[f"{kind}_overlap"] = histogram_overlap(s, t, bins)
        out["samples"][kind] = {"student": s.ravel(), "teacher": t.ravel()}
    return out


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.mean(x[np.isfinite(x)])) if np.isfinite(x).any() else math.nan


def _frac(values) -> float:
    values = [bool(v) for v in values]
    return sum(values) / len(values) if values else math.nan
