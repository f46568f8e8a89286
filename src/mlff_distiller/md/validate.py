"""MD validation of a student: is it fit to run dynamics, and does it relax like its teacher?

:func:`validate_md` runs, per molecule, NVE (energy drift), NVT (stability) and, with a
teacher, geometry optimisations from the same starts and teacher NVT for bond/angle
distributions. Results go to ``md_validation.json`` and figures beside it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mlff_distiller.errors import InputError
from mlff_distiller.evaluation.evaluate import default_out_dir
from mlff_distiller.evaluation.metrics import json_ready
from mlff_distiller.fileio import write_json
from mlff_distiller.md.analysis import energy_drift, kabsch_rmsd
from mlff_distiller.md.compare import compare_distributions, compare_optimisations
from mlff_distiller.md.molecules import check_elements, load_starts
from mlff_distiller.md.runs import MDConfig, optimise, run_md


def resolve_teacher(teacher) -> tuple[object | None, str | None, object | None]:
    """``None`` | teacher spec | ``Teacher`` | ASE calculator -> (calculator, name, Teacher)."""
    if teacher is None:
        return None, None, None
    if isinstance(teacher, str):
        from mlff_distiller.teachers.registry import load_teacher

        teacher = load_teacher(teacher)
    from mlff_distiller.teachers.base import Teacher

    if isinstance(teacher, Teacher):
        return teacher.calculator(), teacher.name, teacher
    if hasattr(teacher, "get_potential_energy") and hasattr(teacher, "calculate"):
        return teacher, type(teacher).__name__, None
    raise InputError(f"teacher: expected a spec string, a Teacher or an ASE calculator, got "
                     f"{type(teacher).__name__}")


def validate_md(
    student_path: str | os.PathLike,
    molecules: Sequence,
    teacher=None,
    config: MDConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    compile: bool = False,
) -> dict:
    """MD validation of a student on a few molecules; writes JSON and figures.

    Args:
        student_path: student checkpoint.
        molecules: SMILES strings, structure files and/or ``ase.Atoms`` (see
            :func:`~mlff_distiller.md.molecules.load_starts`).
        teacher: ``None``, a teacher spec (``"sevennet"``, ``"xtb"``...), a ``Teacher`` or an
            ASE calculator. With a teacher: optimisation comparison and distributions.
        config: :class:`MDConfig` (temperature, steps, thresholds, optimiser...).
        out_dir: output folder (default ``<student dir>/<stem>_md``).
        device: torch device of the student.
        compile: run the student's MD compiled (``StudentCalculator(compile=True)``:
            AOTInductor on a CPU, torch.compile in a CUDA graph on a GPU); the build (tens
            of seconds; on a GPU once more for a second molecule size) is shown in the
            progress bar and reported as ``student_compile_s``.

    Returns:
        The result dict (also ``md_validation.json``); unstable runs are results with the
        failing step, never exceptions.

    Raises:
        InputError: a molecule with an element the student (or teacher) does not know,
            unreadable molecules or checkpoint, invalid config. Raised before any MD runs.
    """
    from rich.progress import Progress

    from mlff_distiller.md.calculator import StudentCalculator
    from mlff_distiller.md.figures import distributions_figure, energy_figure
    from mlff_distiller.models.checkpoint import load_student
    from mlff_distiller.models.painn import count_parameters
    from mlff_distiller.models.presets import preset_name

    config = config or MDConfig()
    model = load_student(student_path, device=device)
    starts = load_starts(molecules, config.conformers, config.seed)
    check_elements(starts, model.elements, f"student {Path(student_path).name}")
    teacher_calc, teacher_name, teacher_obj = resolve_teacher(teacher)
    if teacher_obj is not None:
        teacher_obj.check_elements([s.atoms for s in starts])
    student_calc = StudentCalculator(model, device=device, compile=compile)

    groups = list(dict.fromkeys(s.group for s in starts))
    md_starts = [next(s for s in starts if s.group == g) for g in groups]
    results, traces = [], []
    with Progress(transient=True) as bar:
        total = len(md_starts) * (2 + (teacher_calc is not None)) + 1
        task = bar.add_task("MD validation", total=total)
        if compile:
            on_cpu = student_calc.device.type == "cpu"
            how = "AOTInductor" if on_cpu else "torch.compile"
            bar.update(task, description=f"compiling the student ({how})")
            # on a GPU a structure's first call runs eagerly and its second compiles
            for _ in range(1 if on_cpu else 2):
                student_calc.calculate(md_starts[0].atoms, ["energy", "forces"])
        for start in md_starts:
            entry, trace = _molecule_runs(start, student_calc, teacher_calc, config,
                                          lambda what, s=start: bar.update(
                                              task, advance=1, description=f"{s.name}: {what}"))
            results.append(entry)
            traces.append(trace)
        bar.update(task, description="geometry optimisation")
        if teacher_calc is not None:
            optimisation = compare_optimisations([s.atoms for s in starts],
                                                 [s.group for s in starts],
                                                 student_calc, teacher_calc, config)
        else:
            optimisation = _student_only_optimisation(starts, student_calc, config)
        bar.update(task, advance=1)

    out = Path(out_dir) if out_dir is not None else default_out_dir(student_path, "md")
    figures = {"energy": str(out / "md_energy.png")}
    energy_figure(traces, config, figures["energy"])
    if teacher_calc is not None:
        figures["distributions"] = str(out / "md_distributions.png")
        distributions_figure(traces, figures["distributions"])
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    result = {
        "model": {"path": str(student_path), "name": Path(student_path).stem,
                  "preset": preset_name(model.config) or "custom",
                  "parameters": count_parameters(model), "teacher": meta.get("teacher")},
        "teacher": teacher_name,
        "config": asdict(config),
        "student_compile_s": student_calc.compile_s if compile else None,
        "molecules": results,
        "optimisation": optimisation,
        "summary": _summary(results, optimisation, config),
        "files": {"json": str(out / "md_validation.json"), "figures": figures},
    }
    result = json_ready(result)
    write_json(result["files"]["json"], result)
    return result


def _molecule_runs(start, student_calc, teacher_calc, config: MDConfig, tick) -> tuple[dict, dict]:
    atoms = start.atoms
    n = len(atoms)
    nve = run_md(atoms, student_calc, config, "nve")
    tick("NVE")
    nve_out = _run_summary(nve, config)
    if nve["stable"] and len(nve["time_fs"]) >= 2:
        e = nve["potential_eV"] + nve["kinetic_eV"]
        nve_out.update(energy_drift(nve["time_fs"], e, n, config.timestep_fs,
                                    config.temperature_K))
        nve_out["energy_fluctuation_ratio"] = (
            float(np.std(e) / np.std(nve["kinetic_eV"])) if np.std(nve["kinetic_eV"]) > 0
            else math.nan)
        nve_out["passes_drift_bar"] = bool(
            nve_out["drift_percent_per_100_steps"] < config.drift_bar_percent)
    else:
        nve_out["passes_drift_bar"] = False
    nvt = run_md(atoms, student_calc, config, "nvt")
    tick("NVT")
    entry = {"name": start.name, "group": start.group, "formula": atoms.get_chemical_formula(),
             "n_atoms": n, "nve": nve_out, "nvt": _run_summary(nvt, config)}
    trace = {"name": start.name, "n_atoms": n, "nve": nve, "nvt": nvt}
    if teacher_calc is not None:
        teacher_nvt = run_md(atoms, teacher_calc, config, "nvt")
        tick("teacher NVT")
        entry["teacher_nvt"] = _run_summary(teacher_nvt, config)
        trace["teacher_nvt"] = teacher_nvt
        dist = compare_distributions(atoms.numbers, atoms.positions, nvt["frames"],
                                     teacher_nvt["frames"], config.bond_tolerance)
        trace["samples"] = dist.pop("samples")
        entry["distributions"] = dist
    return entry, trace


def _run_summary(run: dict, config: MDConfig) -> dict:
    temps = run["temperature_K"]
    every = config.sample_interval
    return {
        "stable": run["stable"],
        "failure": run["failure"],
        "steps_done": run["steps_done"],
        "n_steps": run["n_steps"],
        "simulated_fs": run["steps_done"] * config.timestep_fs,
        "mean_temperature_K": float(np.mean(temps)) if len(temps) else math.nan,
        "max_temperature_K": float(np.max(temps)) if len(temps) else math.nan,
        "series": {"time_fs": run["time_fs"][::every], "potential_eV":
                   run["potential_eV"][::every], "kinetic_eV": run["kinetic_eV"][::every]},
    }


def _student_only_optimisation(starts, student_calc, config: MDConfig) -> dict:
    rows = []
    for s in starts:
        final, info = optimise(s.atoms, student_calc, config)
        rmsd = kabsch_rmsd(final.positions, s.atoms.positions) if info["error"] is None \
            else math.nan
        rows.append({"name": s.name, "group": s.group, "student": info,
                     "rmsd_from_start_A": rmsd})
    conv = [r["student"]["converged"] for r in rows]
    return {"optimizer": config.optimizer.upper(), "fmax_eV_per_A": config.fmax,
            "structures": rows,
            "summary": {"n_structures": len(rows),
                        "student_converged_fraction": sum(conv) / len(conv)}}


def _summary(results: list[dict], optimisation: dict, config: MDConfig) -> dict:
    drifts = [r["nve"].get("drift_percent_per_100_steps") for r in results]
    drifts = [d for d in drifts if d is not None and math.isfinite(d)]
    nvt_failures = [r["nvt"]["failure"] for r in results if not r["nvt"]["stable"]]
    nve_stable = [r["nve"]["stable"] for r in results]
    summary = {
        "n_molecules": len(results),
        "nve_stable_fraction": sum(nve_stable) / len(results),
        "nve_drift_percent_per_100_steps_max": max(drifts) if drifts else math.nan,
        "nve_drift_eV_per_atom_per_ps_max_abs": max(
            (abs(r["nve"]["drift_eV_per_atom_per_ps"]) for r in results
             if "drift_eV_per_atom_per_ps" in r["nve"]), default=math.nan),
        "drift_bar_percent": config.drift_bar_percent,
        "nve_passes_drift_bar": all(r["nve"]["passes_drift_bar"] for r in results),
        "nvt_stable_fraction": 1 - len(nvt_failures) / len(results),
        "nvt_simulated_fs": config.nvt_steps * config.timestep_fs,
        "nvt_earliest_failure_step": min((f["step"] for f in nvt_failures), default=None),
        **{f"optimisation_{k}": v for k, v in optimisation["summary"].items()},
    }
    overlaps = [r["distributions"]["bonds_overlap"] for r in results if "distributions" in r]
    angles = [r["distributions"]["angles_overlap"] for r in results if "distributions" in r]
    summary["bond_length_overlap_mean"] = _mean(overlaps)
    summary["angle_overlap_mean"] = _mean(angles)
    return summary


def _mean(values) -> float:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan
