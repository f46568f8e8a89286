"""Distillation quality: each preset trained for a fixed CPU budget on SevenNet-0 labels of
the package's organic molecule set, scored on molecules held out from training; schnetpack's
PaiNN on the same data and budget as the reference.

Data: the labeled, molecule-split dataset of the packaged recipe (``configs/organic.yaml``:
718 molecules, conformers, rattles, bond scans, 300 K and 600 K SevenNet-0 Langevin MD),
made by its generate/label/split stages:
  .venv/bin/mlffd distill configs/organic.yaml      # -> runs/organic/split/data.h5
Any other dataset split by molecule works through --dataset, e.g. labels of one teacher
merged and cleaned with `mlffd data merge` and `mlffd data filter --min-bond-fraction 0.6`
(how the README's 718-molecule numbers were made). The benchmark copies it into --work and
never changes its splits.

Stages (each cached in --work; rerun to continue):
  ours     train original / tiny / ultra-tiny with training.train_student for --budget-s
           process CPU seconds each (CPU time, not wall time: the machine may be shared)
  schnet   schnetpack PaiNN of the same sizes, same data, loss, optimiser and budget
           (runs in a separate venv, see below)
  hessian  ablation: tiny preset on a small training subset with SevenNet-0 Hessian rows,
           with and without the Hessian-row loss, for the same number of optimiser steps
           (the CPU time each run used is reported beside it), over several seeds
  report   prints and writes JSON + Markdown tables

schnetpack is never installed into .venv. Its venv (reuses .venv's torch via a .pth file):
  python3.11 -m venv .venv-bench-schnetpack
  echo "$PWD/.venv/lib/python3.11/site-packages" \
      > .venv-bench-schnetpack/lib/python3.11/site-packages/_main_venv.pth
  .venv-bench-schnetpack/bin/pip install --no-deps -c constraints.txt schnetpack==2.1.1
  .venv-bench-schnetpack/bin/pip install -c constraints.txt dirsync fasteners hydra-core \
      pytorch-lightning torchmetrics torch-ema matscipy

Usage (one process per preset/stage may run concurrently):
  .venv/bin/python benchmarks/distill_quality.py --stages ours --presets tiny   # etc.
  # learning curve in the number of training molecules (same held-out molecules):
  .venv/bin/python benchmarks/distill_quality.py --work runs/dq_mol20 --train-molecules 20 \
      --subset-seed 2 --stages ours,report --presets tiny
  # a training option for ours and schnetpack alike (an ablation; fixed per --work):
  .venv/bin/python benchmarks/distill_quality.py --work runs/dq_fw50 --budget-s 1800 \
      --train-set force_weight=50 --stages ours,report --presets original
  .venv/bin/python benchmarks/distill_quality.py --stages report
Prints one JSON document (also written to WORK/results.json) and WORK/results.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PRESETS = ("original", "tiny", "ultra-tiny")
TARGET_R2 = {"original": 0.995, "tiny": 0.98, "ultra-tiny": 0.95}
SCHNET_PY = Path(".venv-bench-schnetpack/bin/python")
RECIPE_DATASET = Path("runs/organic/split/data.h5")


def stage_data(work: Path, source: Path, train_molecules: int = 0,
               subset_seed: int = 0) -> Path:
    """Copy the recipe's split dataset into ``work`` (once); refuse one without splits.

    ``train_molecules`` > 0 keeps only that many training molecules (the first of a
    ``subset_seed`` permutation; nested as the count grows), for a learning curve in the
    number of molecules; validation and test molecules are unchanged.
    """
    from mlff_distiller.data.splits import split_dataset, summarize_splits
    from mlff_distiller.fileio import atomic_path

    data = work / "dataset.h5"
    if data.exists():
        return data
    if not source.is_file():
        sys.exit(f"dataset {source} not found: run `.venv/bin/mlffd distill "
                 "configs/organic.yaml` (its split stage writes it) or pass --dataset")
    splits = summarize_splits(source)
    if not splits or not all(splits[s]["structures"] for s in ("train", "val", "test")):
        sys.exit(f"dataset {source} needs train, val and test splits by molecule, got "
                 f"{splits}; split it with `mlffd data split`")
    with atomic_path(data) as tmp:
        shutil.copyfile(source, tmp)
        if train_molecules:
            import h5py

            with h5py.File(tmp, "r") as f:
                ids = {name: f["splits"][name][:] for name in ("train", "val", "test")}
            if not 0 < train_molecules <= len(ids["train"]):
                sys.exit(f"--train-molecules {train_molecules}: the dataset has "
                         f"{len(ids['train'])} training molecules")
            subset = np.random.default_rng(subset_seed).permutation(ids["train"])
            split_dataset(tmp, train_ids=subset[:train_molecules].tolist(),
                          val_ids=ids["val"].tolist(), test_ids=ids["test"].tolist(),
                          overwrite=True)
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
    from mlff_distiller.evaluation.metrics import (
        energy_metrics,
        force_metrics,
        relative_energy_metrics,
    )

    n_atoms = np.array([len(z) for z in test["numbers"]])
    f = force_metrics(np.concatenate(pred_f), np.concatenate(test["forces"]))
    e = energy_metrics(np.asarray(pred_e), test["energy"], n_atoms)
    rel = relative_energy_metrics(np.asarray(pred_e), test["energy"], n_atoms,
                                  test["molecule_id"])
    return {"force_r2": f["r2"], "force_rmse": f["rmse"], "force_mae": f["mae"],
            "angular_error_mean_deg": f["angular_error_mean_deg"],
            "energy_mae_per_atom": e["mae_per_atom"],
            "relative_energy_mae_per_atom": rel["mae_per_atom"],
            "n_test_structures": len(n_atoms)}


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
               presets: tuple[str, ...] = PRESETS, train_set: tuple[str, ...] = ()) -> dict:
    from mlff_distiller.fileio import write_json
    from mlff_distiller.training.config import load_train_config
    from mlff_distiller.training.trainer import train_student

    test = test_arrays(data)
    results = {}
    for preset in presets:
        out = work / "ours" / preset
        if not (out / "metrics.json").exists():
            config = load_train_config(None, {
                **parse_train_set(train_set), "time_budget_s": budget, "max_epochs": 100000,
                "num_threads": threads, "early_stopping_patience": 0,
                "checkpoint_every_steps": 500, "budget_clock": "cpu",
                "progress": sys.stderr.isatty(), "device": "cpu"})
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
                 presets: tuple[str, ...] = PRESETS, train_set: tuple[str, ...] = ()) -> dict:
    if not SCHNET_PY.exists():
        return {"skipped": f"{SCHNET_PY} missing; create it with the commands in this "
                           "script's docstring"}
    results = {}
    for preset in presets:
        out = work / "schnet" / f"{preset}.json"
        if not out.exists():
            subprocess.run([str(SCHNET_PY), str(Path(__file__).with_name(
                "schnetpack_painn.py")), str(data), preset, str(out), str(budget),
                str(threads), *train_set], check=True)
        results[preset] = json.loads(out.read_text())
    return results


def parse_train_set(train_set: tuple[str, ...]) -> dict:
    """``("lr=5e-3", "batch_size=32")`` -> TrainConfig overrides (validated by the config)."""
    from mlff_distiller.training.config import load_train_config

    config = load_train_config(None, list(train_set))  # validates names, types and values
    names = [item.partition("=")[0].strip() for item in train_set]
    return {name: getattr(config, name) for name in names}


def pin_train_set(work: Path, train_set: tuple[str, ...]) -> None:
    """Record the --train-set of ``work`` on first use; refuse a different one later (the
    cached models of one work folder must share their training options)."""
    from mlff_distiller.fileio import write_json

    record = work / "train_set.json"
    wanted = sorted(train_set)
    if record.exists():
        had = json.loads(record.read_text())
        if had != wanted:
            sys.exit(f"{work} was trained with --train-set {had or '(none)'}, not "
                     f"{wanted or '(none)'}; use another --work for other training options")
    else:
        write_json(record, wanted)


def fd_sevennet():
    """SevenNet-0 whose Hessian rows come from central differences of its forces
    (delta 1e-3 Å: two force calls per row, ~10x cheaper on a CPU than its double backward;
    the difference from autograd rows is far below the rows' scale of 10-50 eV/Å^2)."""
    from mlff_distiller.teachers.base import Teacher
    from mlff_distiller.teachers.sevennet import SevenNetTeacher

    class FiniteDifferenceSevenNet(SevenNetTeacher):
        hessian_rows = Teacher.hessian_rows

    return FiniteDifferenceSevenNet()


def hessian_subset(work: Path, data: Path, n_structures: int, rows: int) -> Path:
    """``n_structures`` random training structures (+16 validation ones) relabeled with
    SevenNet-0 energies, forces and ``rows`` Hessian rows each, keeping their molecule split."""
    import ase.io

    from mlff_distiller.data.dataset import LabeledDataset
    from mlff_distiller.data.labeling import label_structures
    from mlff_distiller.data.splits import split_dataset

    subset = work / "hessian_subset.h5"
    if subset.exists():
        return subset
    rng = np.random.default_rng(0)
    picked, ids = [], {}
    for split, count in (("train", n_structures), ("val", 16)):
        ds = LabeledDataset(data, split=split)
        ids[split] = set()
        for i in rng.choice(len(ds), min(count, len(ds)), replace=False):
            atoms = ds.atoms(int(i))
            molecule = int(ds.molecule_ids[int(i)])
            atoms.info["molecule_id"] = molecule
            ids[split].add(molecule)
            picked.append(atoms)
    pool = work / "hessian_pool.extxyz"
    ase.io.write(pool, picked, format="extxyz")
    label_structures(pool, fd_sevennet(), subset, chunk_size=64, hessian_rows=rows)
    split_dataset(subset, ratios=None, train_ids=sorted(ids["train"]),
                  val_ids=sorted(ids["val"]), test_ids=[])
    return subset


def stage_hessian(work: Path, data: Path, n_structures: int, rows: int, steps: int,
                  seeds: int, threads: int) -> dict:
    """Tiny preset on a small subset, with and without the Hessian-row loss, for the same
    number of optimiser steps; each run's CPU time is reported beside its errors."""
    from mlff_distiller.training.config import TrainConfig
    from mlff_distiller.training.trainer import train_student

    subset = hessian_subset(work, data, n_structures, rows)
    test = test_arrays(data)
    out = {}
    for weight in (0.0, 1.0):
        runs = []
        for seed in range(seeds):
            run = work / "hessian" / f"w{weight:g}-s{seed}"
            if not (run / "metrics.json").exists():
                config = TrainConfig(max_steps=steps, max_epochs=100000, seed=seed,
                                     num_threads=threads, early_stopping_patience=0,
                                     hessian_weight=weight, progress=sys.stderr.isatty(),
                                     device="cpu")
                train_student(subset, "tiny", config, run)
            summary = json.loads((run / "metrics.json").read_text())
            runs.append({**evaluate_ours(str(run / "best.safetensors"), test), "seed": seed,
                         "val_hessian_rmse": summary["final"].get("val_hessian_rmse"),
                         "steps": summary["steps"], "train_time_s": summary["train_time_s"],
                         "n_train": summary["n_train"]})
        out[f"hessian_weight={weight:g}"] = {
            "runs": runs, **{f"{k}_mean": float(np.mean([r[k] for r in runs]))
                             for k in ("force_r2", "force_mae", "energy_mae_per_atom",
                                       "train_time_s")}}
    return out


def _milli(value) -> str:
    return "–" if value is None else f"{1000 * value:.2f}"


def markdown(results: dict) -> str:
    lines = ["| model | preset | params | CPU s | steps | train structures/s | "
             "force R² (target) | force RMSE | force MAE | angle (°) | energy MAE (meV/atom) | "
             "energy MAE, molecule offsets removed (meV/atom) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for who in ("ours", "schnet"):
        for preset, r in results.get(who, {}).items():
            if not isinstance(r, dict) or "force_r2" not in r:
                continue
            lines.append(
                f"| {who} | {preset} | {r.get('parameters', 0):,} | "
                f"{r.get('train_time_s', 0):.0f} | {r.get('steps', '')} | "
                f"{r.get('train_structures_per_s', 0):.1f} | {r['force_r2']:.4f} "
                f"({TARGET_R2[preset]}) | {r['force_rmse']:.4f} | {r['force_mae']:.4f} | "
                f"{r['angular_error_mean_deg']:.2f} | {1000 * r['energy_mae_per_atom']:.2f} | "
                f"{_milli(r.get('relative_energy_mae_per_atom'))} |")
    hessian = results.get("hessian", {})
    if hessian:
        lines += ["", "Hessian-row loss ablation (tiny; same optimiser steps; mean over seeds):",
                  "", "| hessian_weight | seeds | train structures | steps | CPU s | force R² | "
                  "force MAE | energy MAE (meV/atom) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in hessian.items():
            first = r["runs"][0]
            lines.append(f"| {name.split('=')[1]} | {len(r['runs'])} | {first['n_train']} | "
                         f"{first['steps']} | {r['train_time_s_mean']:.0f} | "
                         f"{r['force_r2_mean']:.4f} | {r['force_mae_mean']:.4f} | "
                         f"{1000 * r['energy_mae_per_atom_mean']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/distill_quality")
    parser.add_argument("--dataset", type=Path, default=RECIPE_DATASET,
                        help="labeled dataset split by molecule [%(default)s]")
    parser.add_argument("--stages", default="ours,schnet,hessian,report")
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="training budget per model in process CPU seconds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help="presets of the ours/schnet stages (one process per preset "
                             "can run concurrently)")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="training option for ours and schnetpack alike (repeatable), "
                             "e.g. --train-set force_weight=50; fixed per --work")
    parser.add_argument("--train-molecules", type=int, default=0,
                        help="train on only this many of the training molecules (0: all); "
                             "fixed when --work is first created")
    parser.add_argument("--subset-seed", type=int, default=0,
                        help="seed of the --train-molecules subset")
    parser.add_argument("--hessian-structures", type=int, default=60)
    parser.add_argument("--hessian-rows", type=int, default=2)
    parser.add_argument("--hessian-steps", type=int, default=600)
    parser.add_argument("--hessian-seeds", type=int, default=3)
    args = parser.parse_args()
    import torch

    from mlff_distiller.errors import InputError
    from mlff_distiller.fileio import write_json, write_text

    train_set = tuple(args.train_set)
    try:
        parse_train_set(train_set)
    except InputError as exc:
        sys.exit(f"--train-set: {exc}")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    start = time.perf_counter()
    data = stage_data(work, args.dataset, args.train_molecules, args.subset_seed)
    pin_train_set(work, train_set)
    setup = {"budget_s_per_model": args.budget_s, "threads": args.threads,
             "train_molecules": args.train_molecules or "all", "subset_seed": args.subset_seed,
             "dataset_source": str(args.dataset), "train_set": list(train_set),
             "hessian_steps": args.hessian_steps,
             "hessian_structures": args.hessian_structures, "hessian_rows": args.hessian_rows}
    # each stage writes its own file, so stages can run as concurrent processes
    presets = tuple(args.presets.split(","))
    if "ours" in stages:
        stage_ours(work, data, args.budget_s, args.threads, presets, train_set)
    if "schnet" in stages:
        stage_schnet(work, data, args.budget_s, args.threads, presets, train_set)
    if "hessian" in stages:
        write_json(work / "hessian.json", stage_hessian(
            work, data, args.hessian_structures, args.hessian_rows, args.hessian_steps,
            args.hessian_seeds, args.threads))
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
