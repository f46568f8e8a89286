"""Cheaper `tiny` architectures against the prototype's `tiny`: accuracy at `tiny`'s training
budget and speed per compiled MD step against `original`; JSON out.

Variants (``--variants``, names from :data:`VARIANTS`): changes to the prototype's `tiny`
(F=64, 2 interactions, 12 RBF, a radial filter per interaction, 5 Å), e.g. ``shared`` (one
radial filter for both interactions) or ``shared-c4`` (that and a 4 Å cutoff, about 2/3 of
the pairs of a drug-sized molecule; the `tiny` preset since session 11), ``one-c4`` and
``one-c5`` (a single interaction of F=88 at 4 or 5 Å, tiny's parameter budget).

Stages (each resumable: a trained variant and seed is not retrained):

  train   every variant, one process per variant and seed, two at a time (the 2-core
          machine), exactly as ``distill_quality.py --stages ours`` trains `tiny`:
          ``--budget-s`` process-CPU seconds, 1 thread, then scored on the dataset's test
          split (``<work>/<variant>_seed<k>/eval.json``).
  speed   the zoo `original` and each variant's seed-0 student as compiled ASE calculators,
          MD steps in alternating blocks (``inference.presets_head_to_head``): ratios to
          `original` at 9/20/40/76 atoms, 1 and 2 threads.

Usage:
  .venv/bin/python benchmarks/tiny_variants.py --work runs/tiny_variants \\
      --dataset runs/dq_v3/dataset.h5 --variants prototype,shared-c4 --stages train,speed

Never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROTOTYPE_TINY = {"hidden": 64, "n_interactions": 2, "n_rbf": 12}  # 5 Å, own filters
# name -> changes to PROTOTYPE_TINY
VARIANTS: dict[str, dict] = {
    "prototype": {},
    "shared": {"shared_filters": True},
    "c4": {"cutoff": 4.0},
    "shared-c4": {"shared_filters": True, "cutoff": 4.0},
    # one interaction of F=88 and 20 RBF (76,605 parameters, tiny's budget): half the matrix
    # products per call, so fixed per-call costs weigh less on small molecules
    "one-c4": {"hidden": 88, "n_interactions": 1, "n_rbf": 20, "cutoff": 4.0},
    "one-c5": {"hidden": 88, "n_interactions": 1, "n_rbf": 20, "cutoff": 5.0},
}


def variant_config(variant: str):
    """The PaiNNConfig of ``variant`` (the prototype's tiny with the variant's changes)."""
    from mlff_distiller.models.painn import PaiNNConfig

    return PaiNNConfig(**{**PROTOTYPE_TINY, **VARIANTS[variant]})


def train_one(work: Path, dataset: Path, variant: str, seed: int, budget: float) -> dict:
    """Train and score one model (the body of one worker process)."""
    import distill_quality as dq

    from mlff_distiller.fileio import write_json
    from mlff_distiller.training.config import load_train_config
    from mlff_distiller.training.trainer import train_student

    out = work / f"{variant}_seed{seed}"
    if not (out / "metrics.json").exists():
        config = load_train_config(None, {
            "time_budget_s": budget, "max_epochs": 100000, "num_threads": 1,
            "early_stopping_patience": 0, "checkpoint_every_steps": 500,
            "budget_clock": "cpu", "progress": False, "device": "cpu", "seed": seed})
        train_student(dataset, variant_config(variant), config, out,
                      resume=(out / "training_state.safetensors").exists())
    summary = json.loads((out / "metrics.json").read_text())
    result = {**dq.evaluate_ours(str(out / "best.safetensors"), dq.test_arrays(dataset)),
              "variant": variant, "config": VARIANTS[variant], "seed": seed,
              "parameters": summary["parameters"], "steps": summary["steps"]}
    write_json(out / "eval.json", result)
    return result


def stage_train(work: Path, dataset: Path, variants: list[str], seeds: list[int],
                budget: float) -> list[dict]:
    """Every (variant, seed), two worker processes side by side."""
    runs = [(v, s) for s in seeds for v in variants]
    results = []
    for k in range(0, len(runs), 2):
        jobs = [subprocess.Popen([sys.executable, __file__, "--worker", variant, str(seed),
                                  "--work", str(work), "--dataset", str(dataset),
                                  "--budget-s", str(budget)], stdout=subprocess.PIPE, text=True)
                for variant, seed in runs[k:k + 2]]
        for job in jobs:
            stdout, _ = job.communicate()
            if job.returncode:
                raise SystemExit(f"training worker failed (exit {job.returncode})")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    return results


def stage_speed(work: Path, variants: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf
    import torch

    from mlff_distiller import StudentCalculator, load_student
    from mlff_distiller.structures.sources import embed_conformers

    torch.set_num_threads(1)
    calcs = {"original": StudentCalculator(inf.student_model("original"), compile=True)}
    for variant in variants:
        path = work / f"{variant}_seed0" / "best.safetensors"
        if not path.exists():
            raise SystemExit(f"{path} missing: run --stages train first")
        calcs[variant] = StudentCalculator(load_student(path), compile=True)
    mols = {n: embed_conformers(s, 1, seed=0)[0] for n, s in inf.MOLECULES.items()}
    return inf.presets_head_to_head(mols, calcs, rounds, block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/tiny_variants")
    parser.add_argument("--dataset", default="runs/dq_v3/dataset.h5")
    parser.add_argument("--variants", default="prototype,shared-c4")
    parser.add_argument("--stages", default="train,speed")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=40)
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work, dataset = Path(args.work), Path(args.dataset)
    if args.worker:
        print(json.dumps(train_one(work, dataset, args.worker[0], int(args.worker[1]),
                                   args.budget_s)))
        return
    from mlff_distiller.fileio import write_json

    stages = args.stages.split(",")
    unknown = sorted(set(stages) - {"train", "speed"})
    if unknown:
        parser.error(f"--stages: unknown {unknown}; choose from train, speed")
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if not dataset.exists():
        parser.error(f"--dataset {dataset} not found (build it as benchmarks/distill_quality.py "
                     "describes)")
    result_path = work / "results.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    if "train" in stages:
        result["train"] = stage_train(work, dataset, variants,
                                      [int(s) for s in args.seeds.split(",")], args.budget_s)
        write_json(result_path, result)
    if "speed" in stages:
        result["speed"] = stage_speed(work, variants, args.rounds, args.block)
        write_json(result_path, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {result_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
