"""Where a student's held-out force error comes from: metrics per generation method
(conformer, rattle by displacement size, bond scan, teacher MD) of the test structures
(``--split train`` or ``val`` for the others: a method whose error is much larger on held-out
molecules than on the training ones is a generalisation gap, not a fitting one).

Force R² depends on the spread of the reference forces as much as on the error, so each row
gives RMSE and the share of the total squared error beside R². The labeled dataset keeps
each structure's index in the generation pool (``structures/source_index``); the pool's
extxyz comments carry ``method`` and, for rattles, ``param_sigma`` (Å).

Usage (defaults: the organic recipe's run, see benchmarks/distill_quality.py):
  .venv/bin/python benchmarks/error_by_method.py STUDENT.safetensors \
      [--dataset runs/organic/split/data.h5] [--pool runs/organic/generate/pool.extxyz] \
      [--split test|train|val]
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RATTLE_BINS = (0.0, 0.03, 0.06, 0.09, np.inf)  # Å, the rattle's Gaussian sigma


def group_labels(data: Path, pool: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """One label per structure of ``split`` in file order, and their atom counts (to check
    that the order is the split's)."""
    import h5py
    from ase.io import iread

    infos = [a.info for a in iread(pool, index=":")]
    with h5py.File(data, "r") as f:
        source = f["structures/source_index"][:]
        molecule = f["structures/molecule_id"][:]
        chosen = np.isin(molecule, f[f"splits/{split}"][:])
        n_atoms = f["structures/n_atoms"][:][chosen]
    labels = []
    for index in source[chosen]:
        info = infos[index]
        method = str(info.get("method", "unknown"))
        if method == "rattle":
            sigma = float(info.get("param_sigma", 0.0))
            k = int(np.searchsorted(RATTLE_BINS, sigma, side="right")) - 1
            lo, hi = RATTLE_BINS[k], RATTLE_BINS[k + 1]
            method = f"rattle sigma {lo:g}-{hi:g} Å" if np.isfinite(hi) else \
                f"rattle sigma >= {lo:g} Å"
        labels.append(method)
    return np.array(labels), n_atoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("student")
    parser.add_argument("--dataset", type=Path, default=Path("runs/organic/split/data.h5"))
    parser.add_argument("--pool", type=Path, default=Path("runs/organic/generate/pool.extxyz"))
    parser.add_argument("--split", choices=("test", "train", "val"), default="test")
    args = parser.parse_args()
    import torch

    from mlff_distiller.data.dataset import LabeledDataset
    from mlff_distiller.evaluation.evaluate import predict_split
    from mlff_distiller.evaluation.metrics import force_metrics
    from mlff_distiller.models.checkpoint import load_student

    torch.set_num_threads(1)
    model = load_student(args.student)
    preds, skipped = predict_split(model, LabeledDataset(args.dataset, split=args.split,
                                                         cutoff=model.cutoff), batch_size=32)
    labels, n_atoms = group_labels(args.dataset, args.pool, args.split)
    if skipped["n_skipped"] or not np.array_equal(n_atoms, preds.n_atoms):
        raise SystemExit(f"{args.student}: skipped {skipped['n_skipped']} {args.split} "
                         f"structures or {args.pool} does not match {args.dataset}; per-method "
                         f"rows need every {args.split} structure of the pool the dataset was "
                         "labeled from")
    atom_label = labels[preds.atom_structure]
    total_sse = float(np.sum((preds.pred_forces - preds.ref_forces) ** 2))

    def row(select: np.ndarray) -> dict:
        pf, rf = preds.pred_forces[select], preds.ref_forces[select]
        m = force_metrics(pf, rf)
        return {"structures": int(len(np.unique(preds.atom_structure[select]))),
                "force_r2": m["r2"], "force_rmse": m["rmse"], "force_mae": m["mae"],
                "reference_force_rms": float(np.sqrt(np.mean(rf**2))),
                "share_of_squared_error": float(np.sum((pf - rf) ** 2)) / total_sse}

    result = {"student": args.student, "dataset": str(args.dataset), "split": args.split,
              "all": row(np.ones(len(atom_label), bool)),
              "by_method": {name: row(atom_label == name) for name in sorted(set(labels))}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
