"""Recommended and not-recommended uses, derived from measured numbers and stated thresholds.

Each use is judged from the evaluation / MD / benchmark results: ``recommended`` when every
criterion passes, ``not recommended`` when one fails, ``not assessed`` when a number it
needs was not measured. The evidence string quotes each number next to its threshold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class UseThresholds:
    """Pass marks for each use (units in the names)."""

    md_force_mae_eV_A: float = 0.10  # force MAE for MD use
    md_nvt_stable_fraction: float = 1.0  # every validation molecule must stay intact
    md_min_nvt_ps: float = 1.0  # shorter validation runs are too little evidence
    geometry_rmsd_A: float = 0.10  # mean RMSD of student vs teacher relaxed geometries
    geometry_converged_fraction: float = 0.9  # relaxations reaching fmax
    ranking_spearman: float = 0.8  # mean Spearman of conformer energies per molecule
    relaxed_order_fraction: float = 1.0  # molecules whose relaxed conformers keep their order
    energy_mae_meV_atom: float = 5.0  # energy screening / relative energies
    force_critical_r2: float = 0.99  # force R^2 for force-critical work
    force_critical_angle_deg: float = 10.0  # mean angle between force vectors
    speedup_vs_teacher: float = 5.0  # throughput gain to replace the teacher in screening


def _get(d: dict | None, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d if not (isinstance(d, float) and math.isnan(d)) else None


def _judge(name: str, checks: list[tuple]) -> dict:
    """checks: (what, value, "<=" | ">=", threshold, unit[, optional]); an optional check
    that was not measured does not block a recommendation."""
    parts, missing, failed = [], [], []
    for what, value, op, threshold, unit, *optional in checks:
        if value is None:
            if not optional:
                missing.append(what)
            continue
        ok = value <= threshold if op == "<=" else value >= threshold
        parts.append(f"{what} {value:.3g}{unit} ({'meets' if ok else 'fails'} {op} "
                     f"{threshold:g}{unit})")
        if not ok:
            failed.append(what)
    if failed:
        status = "not recommended"
    elif missing:
        status = "not assessed"
    else:
        status = "recommended"
    evidence = "; ".join(parts)
    if missing:
        evidence += ("; " if evidence else "") + "not measured: " + ", ".join(missing)
    return {"use": name, "status": status, "evidence": evidence}


def derive_uses(evaluation: dict | None, md: dict | None, bench: dict | None,
                thresholds: UseThresholds = UseThresholds()) -> list[dict]:
    """Judge each use from the result dicts (any may be ``None``)."""
    t = thresholds
    temperature = _get(md, "config", "temperature_K") or 300.0
    drift = _get(md, "summary", "nve_drift_percent_per_100_steps_max")
    bar = _get(md, "summary", "drift_bar_percent") or 0.1
    nvt_fs = _get(md, "summary", "nvt_simulated_fs")
    energy_mae = _get(evaluation, "energy", "mae_per_atom")
    uses = [
        _judge(f"Molecular dynamics at {temperature:g} K", [
            ("force MAE", _get(evaluation, "forces", "mae"), "<=", t.md_force_mae_eV_A,
             " eV/Å"),
            ("NVE stable fraction", _get(md, "summary", "nve_stable_fraction"), ">=",
             t.md_nvt_stable_fraction, ""),
            ("NVE drift (worst molecule)", drift, "<=", bar, " %/100 steps"),
            ("NVT stable fraction", _get(md, "summary", "nvt_stable_fraction"), ">=",
             t.md_nvt_stable_fraction, ""),
            ("NVT length per molecule", None if nvt_fs is None else nvt_fs / 1000, ">=",
             t.md_min_nvt_ps, " ps"),
        ]),
        _judge("Geometry optimisation", [
            ("relaxed-geometry RMSD vs teacher", _get(md, "summary", "optimisation_rmsd_mean_A"),
             "<=", t.geometry_rmsd_A, " Å"),
            ("converged fraction", _get(md, "summary", "optimisation_student_converged_fraction"),
             ">=", t.geometry_converged_fraction, ""),
        ]),
        _judge("Conformer ranking", [
            ("mean conformer Spearman", _get(evaluation, "conformer_ranking", "spearman_mean"),
             ">=", t.ranking_spearman, ""),
            ("relaxed conformer order kept (fraction of molecules)",
             _get(md, "summary", "optimisation_conformer_order_preserved_fraction"), ">=",
             t.relaxed_order_fraction, "", True),
        ]),
        _judge("Energy screening (relative energies)", [
            ("energy MAE", None if energy_mae is None else 1000 * energy_mae, "<=",
             t.energy_mae_meV_atom, " meV/atom"),
        ]),
        _judge("Force-critical work (vibrations, force matching)", [
            ("force R²", _get(evaluation, "forces", "r2"), ">=", t.force_critical_r2, ""),
            ("mean angular error", _get(evaluation, "forces", "angular_error_mean_deg"), "<=",
             t.force_critical_angle_deg, "°"),
        ]),
        _judge("Replacing the teacher in high-throughput screening", [
            ("speed-up vs teacher", teacher_speedup(bench), ">=", t.speedup_vs_teacher, "x"),
            ("force MAE", _get(evaluation, "forces", "mae"), "<=", t.md_force_mae_eV_A,
             " eV/Å"),
        ]),
    ]
    return uses


def teacher_speedup(bench: dict | None) -> float | None:
    """The teacher speed-up ratio of a benchmark JSON (``summary.teacher_speedup`` or a
    top-level ``teacher_speedup``), if it has one."""
    return _get(bench, "summary", "teacher_speedup") or _get(bench, "teacher_speedup")


def thresholds_table(thresholds: UseThresholds = UseThresholds()) -> list[list]:
    """Rows (name, value) of the thresholds, for the card."""
    return [[k, v] for k, v in asdict(thresholds).items()]
