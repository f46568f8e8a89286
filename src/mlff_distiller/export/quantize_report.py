"""``quantize_student``: write a quantized student and measure what it costs.

For one mode, in one run: file size, speed vs the float32 student, force R²/MAE vs the
float32 student (and vs the teacher's labels when a dataset is given), a finite-difference
test of whether forces are still -dE/dx, and NVE energy drift on a small molecule. The
verdict ``fit_for_md`` is False, with reasons, when forces are not conservative or the NVE
drift is far above the float32 student's.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlff_distiller import keys
from mlff_distiller.errors import InputError
from mlff_distiller.export.core import LoadedExport, parity_structures
from mlff_distiller.export.quantize import (
    check_mode,
    checkpoint_size,
    default_out_path,
    load_quantized,
    write_quantized,
)
from mlff_distiller.fileio import write_json
from mlff_distiller.models.checkpoint import load_student
from mlff_distiller.models.forces import ForceField

FD_STEP = 1e-2  # Å, central differences along random whole-molecule directions
NON_CONSERVATIVE_FACTOR = 10.0  # FD mismatch this many times float32's (+ FD_FLOOR) fails
FD_FLOOR = 1e-3  # eV/Å
DRIFT_FACTOR = 10.0  # NVE drift this many times float32's (+ DRIFT_FLOOR) fails
DRIFT_FLOOR = 1e-3  # eV/atom/ps

Predict = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def quantize_student(
    checkpoint: str | os.PathLike,
    mode: str,
    out_path: str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    max_structures: int = 32,
    md_steps: int = 200,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Quantize a student checkpoint and report size, speed, accuracy and MD fitness.

    Args:
        checkpoint: float32 student (``.safetensors``).
        mode: ``fp16`` | ``bf16`` | ``int8-weight`` | ``int8-onnx``.
        out_path: where to write the quantized model (default beside the checkpoint).
        dataset: optional labelled ``.h5``; its first ``max_structures`` structures are
            used for accuracy, including vs the teacher's labels.
        md_steps: NVE steps (0.5 fs) on a small molecule for the drift test.
        repeats: timing repeats (median reported; one warm-up pass excluded).

    Returns the report dict (also written to ``<out_path>.json``).
    """
    mode = check_mode(mode)
    fp32 = load_student(checkpoint).float()
    out = Path(out_path) if out_path else default_out_path(checkpoint, mode)
    write_quantized(fp32, mode, out)
    quant = load_quantized(out, mode)
    predict_ref, predict_q = _predictor(fp32), _predictor(quant)
    graphs = _eval_graphs(fp32, dataset, max_structures, seed)
    ref = [predict_ref(g) for g in graphs]
    got = [predict_q(g) for g in graphs]
    report: dict[str, Any] = {
        "mode": mode,
        "checkpoint": str(checkpoint),
        "path": str(out),
        "size_bytes": {"float32": checkpoint_size(checkpoint), mode: out.stat().st_size},
        "n_eval_structures": sum(int(g[keys.CELL].shape[0]) for g in graphs),
        "vs_float32": _accuracy(got, ref),
    }
    report["size_ratio"] = report["size_bytes"][mode] / report["size_bytes"]["float32"]
    if dataset is not None:
        labels = [{k: g[k] for k in (keys.ENERGY, keys.FORCES)} for g in graphs]
        report["vs_teacher"] = {
            "float32": _accuracy(ref, labels), mode: _accuracy(got, labels)
        }
    report["speed"] = _speed(predict_ref, predict_q, graphs, repeats, mode)
    molecule = md_molecule(fp32.elements)
    report["md_molecule"] = molecule.get_chemical_formula()
    fd = {"float32": fd_mismatch(predict_ref, molecule, fp32.cutoff, seed),
          mode: fd_mismatch(predict_q, molecule, fp32.cutoff, seed)}
    drift = {"float32": nve_drift(_calculator(fp32), molecule, md_steps, seed),
             mode: nve_drift(_calculator(quant), molecule, md_steps, seed)}
    report["fd_force_mismatch_ev_per_a"] = fd
    report["nve"] = drift
    report.update(_verdict(mode, fd, drift))
    write_json(out.with_name(out.name + ".json"), report)
    return report


def _verdict(mode: str, fd: dict, drift: dict) -> dict[str, Any]:
    reasons = []
    if fd[mode] > NON_CONSERVATIVE_FACTOR * fd["float32"] + FD_FLOOR:
        reasons.append(
            f"forces disagree with finite differences of its own energy by {fd[mode]:.2e} "
            f"eV/Å (float32: {fd['float32']:.2e}): energy too coarse or not conservative"
        )
    if mode == "int8-onnx":
        reasons.append(
            "by construction: quantize_dynamic quantises the forward and the traced backward "
            "MatMuls separately, so its forces are not -dE/dx of its own energy"
        )
    d_ref = abs(drift["float32"]["drift_eV_per_atom_per_ps"])
    d_q = abs(drift[mode]["drift_eV_per_atom_per_ps"])
    if "failure" in drift[mode]:
        reasons.append(f"NVE run failed: {drift[mode]['failure']}")
    elif not np.isfinite(d_q) or d_q > DRIFT_FACTOR * d_ref + DRIFT_FLOOR:
        reasons.append(f"NVE drift {d_q:.2e} eV/atom/ps vs {d_ref:.2e} for float32")
    return {"fit_for_md": not reasons, "unfit_reasons": reasons}


def _predictor(model: ForceField | LoadedExport) -> Predict:
    if isinstance(model, LoadedExport):
        return lambda graph: {k: v.detach().double() for k, v in model.predict(graph).items()}
    dtype = next(model.parameters()).dtype

    def predict(graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in graph.items()}
        out = model(cast, compute_forces=True, compute_stress=False)
        return {k: v.detach().double() for k, v in out.items()}

    return predict


def _calculator(model: ForceField | LoadedExport):
    if isinstance(model, LoadedExport):
        from mlff_distiller.export.calculators import ExportCalculator

        return ExportCalculator(model)
    from mlff_distiller.md.calculator import StudentCalculator

    return StudentCalculator(model)


def md_molecule(elements) -> Any:
    """The largest ASE g2 molecule (<= 12 atoms) made only of ``elements``."""
    from ase.build import molecule
    from ase.collections import g2

    allowed = set(int(z) for z in elements)
    best = None
    for name in g2.names:
        atoms = molecule(name)
        if set(atoms.numbers.tolist()) <= allowed and len(atoms) <= 12:
            if best is None or len(atoms) > len(best):
                best = atoms
    if best is None:
        best = parity_structures(sorted(allowed), 5.0)["molecule"][0]
    return best


def _eval_graphs(model: ForceField, dataset, max_structures: int, seed: int) -> list[dict]:
    from mlff_distiller.data.graph import atoms_to_graph

    if dataset is not None:
        from mlff_distiller.data.dataset import LabeledDataset

        data = LabeledDataset(dataset, cutoff=model.cutoff)
        return [data[i] for i in range(min(len(data), max_structures))]
    rng = np.random.default_rng(seed)
    base = md_molecule(model.elements)
    graphs = []
    for _ in range(max(1, max_structures // 4)):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        graphs.append(atoms_to_graph(atoms, model.cutoff))
    cases = parity_structures(model.elements, model.cutoff)
    graphs += [atoms_to_graph(cases[k], model.cutoff) for k in ("molecule", "periodic")]
    return graphs


def _accuracy(pred: list[dict], ref: list[dict]) -> dict[str, float]:
    from mlff_distiller.evaluation.metrics import mae, r2_score

    fp = torch.cat([p[keys.FORCES].reshape(-1) for p in pred]).double().numpy()
    fr = torch.cat([r[keys.FORCES].reshape(-1) for r in ref]).double().numpy()
    ep = torch.cat([p[keys.ENERGY].reshape(-1) for p in pred]).double().numpy()
    er = torch.cat([r[keys.ENERGY].reshape(-1) for r in ref]).double().numpy()
    return {"force_r2": r2_score(fp, fr), "force_mae_ev_per_a": mae(fp, fr),
            "energy_mae_ev": mae(ep, er)}


def _speed(ref: Predict, quant: Predict, graphs, repeats: int, mode: str) -> dict[str, float]:
    times: dict[str, list[float]] = {"float32": [], mode: []}
    for fn in (ref, quant):
        for g in graphs:  # warm-up
            fn(g)
    for _ in range(repeats):
        for name, fn in (("float32", ref), (mode, quant)):
            start = time.perf_counter()
            for g in graphs:
                fn(g)
            times[name].append((time.perf_counter() - start) / len(graphs))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"ms_per_structure_float32": med["float32"], f"ms_per_structure_{mode}": med[mode],
            "speedup": med["float32"] / med[mode], "threads": torch.get_num_threads()}


def fd_mismatch(predict: Predict, atoms, cutoff: float, seed: int, n_dirs: int = 3) -> float:
    """max over random unit directions d of |(E(x+hd) - E(x-hd)) / 2h + F(x)·d| in eV/Å."""
    from mlff_distiller.data.graph import atoms_to_graph

    rng = np.random.default_rng(seed)
    forces = predict(atoms_to_graph(atoms, cutoff))[keys.FORCES].double().numpy()
    worst = 0.0
    for _ in range(n_dirs):
        d = rng.normal(size=atoms.positions.shape)
        d /= np.linalg.norm(d)
        energies = []
        for sign in (1.0, -1.0):
            moved = atoms.copy()
            moved.positions += sign * FD_STEP * d
            energies.append(float(predict(atoms_to_graph(moved, cutoff))[keys.ENERGY][0]))
        slope = (energies[0] - energies[1]) / (2 * FD_STEP)
        worst = max(worst, abs(slope + float(np.sum(forces * d))))
    return worst


def nve_drift(calc, atoms, steps: int, seed: int, temperature: float = 300.0) -> dict:
    """Velocity-Verlet NVE (0.5 fs) from Maxwell-Boltzmann velocities; total-energy drift."""
    from ase import units
    from ase.md.velocitydistribution import Stationary
    from ase.md.verlet import VelocityVerlet

    from mlff_distiller.md.analysis import energy_drift
    from mlff_distiller.md.velocities import maxwell_boltzmann

    atoms = atoms.copy()
    atoms.calc = calc
    maxwell_boltzmann(atoms, temperature, np.random.default_rng(seed))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    energies = [atoms.get_total_energy()]
    failure = None
    try:
        for _ in range(steps):
            dyn.run(1)
            energies.append(atoms.get_total_energy())
            if not np.isfinite(energies[-1]):
                failure = f"non-finite total energy at step {len(energies) - 1}"
                break
    except InputError as exc:  # NaN positions from NaN forces (low-precision overflow)
        failure = f"step {len(energies)}: {exc}"
    if failure is not None:
        return {"drift_eV_per_atom_per_ps": float("nan"), "failure": failure}
    times = np.arange(len(energies)) * 0.5
    return energy_drift(times, np.asarray(energies), len(atoms), 0.5, temperature)


__all__ = ["fd_mismatch", "md_molecule", "nve_drift", "quantize_student"]
