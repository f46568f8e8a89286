"""Distillation quality: SevenNet-0 labels -> each preset trained for a fixed CPU budget ->
errors on molecules held out from training; schnetpack's PaiNN on the same data and budget.

Stages (each cached in --work; rerun to continue):
  data     SMILES -> conformers, rattles, 300 K and 600 K SevenNet-0 Langevin MD
           (structures.generate) -> SevenNet-0 labels (data.labeling) -> molecule splits
  ours     train original / tiny / ultra-tiny with training.train_student for --budget-s
           process CPU seconds each (CPU time, not wall time: the machine may be shared)
  schnet   schnetpack PaiNN of the same sizes, same data, loss, optimiser and budget
           (runs in a separate venv, see below)
  hessian  ablation: tiny preset on a small subset with SevenNet Hessian rows, with and
           without the Hessian-row loss
  report   prints and writes JSON + Markdown tables

schnetpack is never installed into .venv. Its venv (reuses .venv's torch via a .pth file):
  python3.11 -m venv .venv-bench-schnetpack
  echo "$PWD/.venv/lib/python3.11/site-packages" \
      > .venv-bench-schnetpack/lib/python3.11/site-packages/_main_venv.pth
  .venv-bench-schnetpack/bin/pip install --no-deps -c constraints.txt schnetpack
  .venv-bench-schnetpack/bin/pip install -c constraints.txt dirsync fasteners hydra-core \
      pytorch-lightning torchmetrics torch-ema matscipy

Usage (defaults = the run reported in the training notes: 20 molecules, 1220 structures,
90 CPU-s per model; one process per preset/stage may run concurrently):
  .venv/bin/python benchmarks/distill_quality.py --work runs/distill_quality --stages data
  .venv/bin/python benchmarks/distill_quality.py --stages ours --presets tiny   # etc.
  .venv/bin/python benchmarks/distill_quality.py --stages report
Prints one JSON document (also written to WORK/results.json) and WORK/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# name, SMILES. H/C/N/O molecules; the last three are never trained or validated on.
TRAIN = [("methanol", "CO"), ("propanol", "CCCO"), ("acetic_acid", "CC(=O)O"),
         ("acetone", "CC(=O)C"), ("benzene", "c1ccccc1"), ("toluene", "Cc1ccccc1"),
         ("formamide", "NC=O"), ("n_methylacetamide", "CC(=O)NC"), ("pyridine", "c1ccncc1"),
         ("glycine", "NCC(=O)O"), ("acetaldehyde", "CC=O"), ("methylamine", "CN"),
         ("ethylene_glycol", "OCCO"), ("malonaldehyde", "O=CCC=O"),
         ("uracil", "O=C1C=CNC(=O)N1")]
VAL = [("ethylamine", "CCN"), ("anisole", "COc1ccccc1")]
TEST = [("ethanol", "CCO"), ("phenol", "Oc1ccccc1"), ("acetamide", "CC(=O)N")]
PRESETS = ("original", "tiny", "ultra-tiny")
TARGET_R2 = {"original": 0.995, "tiny": 0.98, "ultra-tiny": 0.95}
SCHNET_PY = Path(".venv-bench-schnetpack/bin/python")


def stage_data(work: Path, conformers: int, rattles: int, md_steps: int, stride: int) -> Path:
    import ase.io

    from mlff_distiller.data.labeling import label_structures
    from mlff_distiller.data.splits import split_dataset
    from mlff_distiller.structures.config import GenerateConfig, MDConfig, RattleConfig
    from mlff_distiller.structures.generate import generate_structures

    data = work / "dataset.h5"
    if data.exists():
        return data
    smiles = work / "molecules.smi"
    smiles.write_text("".join(f"{s} {n}\n" for n, s in TRAIN + VAL + TEST))
    pools = []
    for k, temperature in enumerate((300.0, 600.0)):
        pool = work / f"pool_{int(temperature)}K.extxyz"
        if not pool.exists():
            generate_structures(GenerateConfig(
                smiles=str(smiles), out=str(pool), conformers=conformers, seed=k,
                keep_conformers=k == 0, rattle=RattleConfig(n=rattles if k == 0 else 0,
                                                            sigma=(0.01, 0.12)),
                md=MDConfig(steps=md_steps, stride=stride, temperature=temperature,
                           timestep=1.0)))
        pools.append(pool)
    merged = work / "pool.extxyz"
    structures = [a for p in pools for a in ase.io.read(p, ":")]
    ase.io.write(merged, structures, format="extxyz")
    labeled = work / "labeled.h5"
    label_structures(merged, "sevennet", labeled, chunk_size=128)
    ids = {a.info["molecule_name"]: int(a.info["molecule_id"]) for a in structures}
    os.replace(labeled, data)
    split_dataset(data, ratios=None, train_ids=[ids[n] for n, _ in TRAIN],
                  val_ids=[ids[n] for n, _ in VAL], test_ids=[ids[n] for n, _ in TEST])
    return data


def test_arrays(data: Path) -> dict:
    """Held-out structures as plain arrays (shared by both models' evaluation)."""
    from mlff_distiller import keys
    from mlff_distiller.data.dataset import LabeledDataset

    ds = LabeledDataset(data, split="test", dtype=__import__("torch").float64)
    items = [ds[i] for i in range(len(ds))]
    return {"numbers": [g[keys.ATOMIC_NUMBERS].numpy() for g in items],
            "positions": [g[keys.POSITIONS].numpy() for g in items],
            "energy": np.array([float(g[keys.ENERGY][0]) for g in items]),
            "forces": [g[keys.FORCES].numpy() for g in items],
            "molecule_id": np.array([int(g[keys.MOLECULE_ID][0]) for g in items])}


def metrics(pred_e, pred_f, test: dict) -> dict:
    from mlff_distiller.evaluation.metrics import energy_metrics, force_metrics

    n_atoms = np.array([len(z) for z in test["numbers"]])
    f = force_metrics(np.concatenate(pred_f), np.concatenate(test["forces"]))
    e = energy_metrics(np.asarray(pred_e), test["energy"], n_atoms)
    return {"force_r2": f["r2"], "force_rmse": f["rmse"], "force_mae": f["mae"],
            "angular_error_mean_deg": f["angular_error_mean_deg"],
            "energy_mae_per_atom": e["mae_per_atom"], "n_test_structures": len(n_atoms)}


def evaluate_ours(checkpoint: str, test: dict) -> dict:
    import torch
    from ase import Atoms

    from mlff_distiller import keys
    from mlff_distiller.data.graph import atoms_to_graph
    from mlff_distiller.models.checkpoint import load_student

    model = load_student(checkpoint)
    dtype = next(model.parameters()).dtype
    pred_e, pred_f = [], []
    for z, r in zip(test["numbers"], test["positions"], strict=True):
        graph = atoms_to_graph(Atoms(numbers=z, positions=r), model.cutoff, dtype=dtype)
        with torch.enable_grad():
            out = model(graph)
        pred_e.append(float(out[keys.ENERGY][0].detach()))
        pred_f.append(out[keys.FORCES].detach().double().numpy())
    return metrics(pred_e, pred_f, test)


def stage_ours(work: Path, data: Path, budget: float, threads: int,
               presets: tuple[str, ...] = PRESETS) -> dict:
    from mlff_distiller.fileio import write_json
    from mlff_distiller.training.config import TrainConfig
    from mlff_distiller.training.trainer import train_student

    test = test_arrays(data)
    results = {}
    for preset in presets:
        out = work / "ours" / preset
        if not (out / "metrics.json").exists():
            config = TrainConfig(time_budget_s=budget, max_epochs=100000, num_threads=threads,
                                 early_stopping_patience=0, checkpoint_every_steps=500,
                                 budget_clock="cpu",
                                 progress=sys.stderr.isatty(), device="cpu")
            train_student(data, preset, config, out, resume=(out / "training_state.safetensors"
                                                             ).exists())
        summary = json.loads((out / "metrics.json").read_text())
        results[preset] = {**evaluate_ours(str(out / "best.safetensors"), test),
                           "parameters": summary["parameters"], "steps": summary["steps"],
                           "epochs": summary["epochs"], "train_time_s": summary["train_time_s"],
                           "train_structures_per_s": summary["structures_per_s"],
                           "best_val_force_mae": summary["best_val_force_mae"]}
        write_json(out / "eval.json", results[preset])
    return results


def stage_schnet(work: Path, data: Path, budget: float, threads: int,
                 presets: tuple[str, ...] = PRESETS) -> dict:
    if not SCHNET_PY.exists():
        return {"skipped": f"{SCHNET_PY} missing; create it with the commands in this "
                           "script's docstring"}
    results = {}
    for preset in presets:
        out = work / "schnet" / f"{preset}.json"
        if not out.exists():
            subprocess.run([str(SCHNET_PY), str(Path(__file__).with_name(
                "schnetpack_painn.py")), str(data), preset, str(out), str(budget),
                str(threads)], check=True)
        results[preset] = json.loads(out.read_text())
    return results


def fd_sevennet():
    """SevenNet-0 whose Hessian rows come from central differences of its forces
    (delta 1e-3 Å: two force calls per row, ~10x cheaper on a CPU than its double backward;
    the difference from autograd rows is far below the rows' scale of 10-50 eV/Å^2)."""
    from mlff_distiller.teachers.base import Teacher
    from mlff_distiller.teachers.sevennet import SevenNetTeacher

    class FiniteDifferenceSevenNet(SevenNetTeacher):
        hessian_rows = Teacher.hessian_rows

    return FiniteDifferenceSevenNet()


def stage_hessian(work: Path, data: Path, n_structures: int, rows: int, budget: float,
                  threads: int) -> dict:
    """Tiny preset on ``n_structures`` training structures with/without Hessian loss."""
    import ase.io

    from mlff_distiller.data.labeling import label_structures
    from mlff_distiller.data.splits import split_dataset
    from mlff_distiller.training.config import TrainConfig
    from mlff_distiller.training.trainer import train_student

    subset = work / "hessian_subset.h5"
    if not subset.exists():
        pool = ase.io.read(work / "pool.extxyz", ":")
        names = {n for n, _ in TRAIN}
        rng = np.random.default_rng(0)
        train_pool = [a for a in pool if a.info["molecule_name"] in names]
        chosen = [train_pool[i] for i in rng.choice(len(train_pool), n_structures, False)]
        val_names = {n for n, _ in VAL}
        val_pool = [a for a in pool if a.info["molecule_name"] in val_names]
        keep = [val_pool[i] for i in rng.choice(len(val_pool), min(16, len(val_pool)), False)]
        ase.io.write(work / "hessian_pool.extxyz", chosen + keep, format="extxyz")
        # 16 validation structures get Hessian rows too, so the validation Hessian error is
        # reported; test metrics use the main dataset's held-out molecules.
        label_structures(work / "hessian_pool.extxyz", fd_sevennet(), subset, chunk_size=64,
                         hessian_rows=rows)
        present = {int(a.info["molecule_id"]) for a in chosen + keep}
        ids = {a.info["molecule_name"]: int(a.info["molecule_id"]) for a in pool}
        split_dataset(subset, ratios=None,
                      train_ids=[ids[n] for n, _ in TRAIN if ids[n] in present],
                      val_ids=[ids[n] for n, _ in VAL if ids[n] in present], test_ids=[])
    test = test_arrays(data)
    out = {}
    for weight in (0.0, 1.0):
        run = work / "hessian" / f"w{weight:g}"
        if not (run / "metrics.json").exists():
            config = TrainConfig(time_budget_s=budget, max_epochs=100000, num_threads=threads,
                                 early_stopping_patience=0, hessian_weight=weight,
                                 budget_clock="cpu",
                                 progress=sys.stderr.isatty(), device="cpu")
            train_student(subset, "tiny", config, run)
        summary = json.loads((run / "metrics.json").read_text())
        out[f"hessian_weight={weight:g}"] = {
            **evaluate_ours(str(run / "best.safetensors"), test),
            "val_hessian_rmse": summary["final"].get("val_hessian_rmse"),
            "steps": summary["steps"], "n_train": summary["n_train"]}
    return out


def markdown(results: dict) -> str:
    lines = ["| model | preset | params | steps | train structures/s | force R² (target) | "
             "force RMSE | force MAE | angle (°) | energy MAE (meV/atom) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for who in ("ours", "schnet"):
        for preset, r in results.get(who, {}).items():
            if not isinstance(r, dict) or "force_r2" not in r:
                continue
            lines.append(
                f"| {who} | {preset} | {r.get('parameters', 0):,} | {r.get('steps', '')} | "
                f"{r.get('train_structures_per_s', 0):.1f} | {r['force_r2']:.4f} "
                f"({TARGET_R2[preset]}) | {r['force_rmse']:.4f} | {r['force_mae']:.4f} | "
                f"{r['angular_error_mean_deg']:.2f} | {1000 * r['energy_mae_per_atom']:.2f} |")
    for name, r in results.get("hessian", {}).items():
        lines.append(f"\nHessian ablation (tiny, {r['n_train']} training structures) {name}: "
                     f"force R² {r['force_r2']:.4f}, MAE {r['force_mae']:.4f} eV/Å, energy "
                     f"MAE {1000 * r['energy_mae_per_atom']:.2f} meV/atom, val Hessian RMSE "
                     f"{r['val_hessian_rmse']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/distill_quality")
    parser.add_argument("--stages", default="data,ours,schnet,hessian,report")
    parser.add_argument("--budget-s", type=float, default=90.0,
                        help="training budget per model in process CPU seconds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help="presets of the ours/schnet stages (one process per preset "
                             "can run concurrently)")
    parser.add_argument("--conformers", type=int, default=1)
    parser.add_argument("--rattles", type=int, default=30)
    parser.add_argument("--md-steps", type=int, default=60)
    parser.add_argument("--md-stride", type=int, default=4)
    parser.add_argument("--hessian-structures", type=int, default=60)
    parser.add_argument("--hessian-rows", type=int, default=2)
    parser.add_argument("--hessian-budget-s", type=float, default=45.0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    from mlff_distiller.fileio import write_json, write_text

    start = time.perf_counter()
    data = stage_data(work, args.conformers, args.rattles, args.md_steps, args.md_stride)
    setup = {"budget_s_per_model": args.budget_s, "threads": args.threads,
             "hessian_budget_s": args.hessian_budget_s,
             "held_out_molecules": [n for n, _ in TEST], "val_molecules": [n for n, _ in VAL],
             "train_molecules": [n for n, _ in TRAIN]}
    # each stage writes its own file, so stages can run as concurrent processes
    presets = tuple(args.presets.split(","))
    if "ours" in stages:
        stage_ours(work, data, args.budget_s, args.threads, presets)
    if "schnet" in stages:
        stage_schnet(work, data, args.budget_s, args.threads, presets)
    if "hessian" in stages:
        write_json(work / "hessian.json", stage_hessian(
            work, data, args.hessian_structures, args.hessian_rows, args.hessian_budget_s,
            args.threads))
    results = {"setup": setup, "dataset": dataset_summary(data)}
    for who, path in (("ours", "ours/{}/eval.json"), ("schnet", "schnet/{}.json")):
        found = {p: json.loads((work / path.format(p)).read_text()) for p in PRESETS
                 if (work / path.format(p)).exists()}
        if found:
            results[who] = found
    if (work / "hessian.json").exists():
        results["hessian"] = json.loads((work / "hessian.json").read_text())
    results["wall_s_this_invocation"] = time.perf_counter() - start
    write_json(work / "results.json", results)
    write_text(work / "results.md", markdown(results))
    print(json.dumps(results, indent=2, default=float))


def dataset_summary(data: Path) -> dict:
    from mlff_distiller.data.splits import summarize_splits

    return {"path": str(data), "splits": summarize_splits(data)}


if __name__ == "__main__":
    main()
