"""schnetpack's PaiNN timed like our students; a worker of ``benchmarks/inference.py``.

Runs in ``.venv-bench`` (schnetpack is never installed into ``.venv``; setup commands at the
top of ``inference.py``). Reads JSON from stdin: ``{"molecules": [{"numbers", "positions"}],
"configs": {name: {hidden, n_interactions, n_rbf, cutoff[, shared_filters]}}, "repeats": int,
"threads": int}``; prints JSON: per config and molecule the median wall and thread-CPU time
(ms) of one energy + forces call through schnetpack's own ASE path (``AtomsConverter`` with
its matscipy neighbour list, then the model), as ``SpkCalculator`` does per MD step.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import typing

import numpy as np
import torch
import torch.utils.data.dataloader as _dataloader

# schnetpack 2.1 imports a name torch 2.13 no longer has; a TypeVar is all it needs.
_dataloader.T_co = typing.TypeVar("T_co", covariant=True)
import schnetpack as spk  # noqa: E402
import schnetpack.transform as trn  # noqa: E402
from ase import Atoms  # noqa: E402


def build(hidden: int, n_interactions: int, n_rbf: int, cutoff: float,
          shared_filters: bool = False):
    """PaiNN with our preset's sizes and our sin(n pi r / rc) / r basis (Bessel)."""
    representation = spk.representation.PaiNN(
        n_atom_basis=hidden,
        n_interactions=n_interactions,
        shared_filters=shared_filters,
        radial_basis=spk.nn.BesselRBF(n_rbf=n_rbf, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
    )
    model = spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=hidden, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )
    return model.eval()


def main() -> None:
    job = json.load(sys.stdin)
    torch.set_num_threads(int(job["threads"]))
    repeats = int(job["repeats"])
    out = []
    for name, cfg in job["configs"].items():
        torch.manual_seed(0)
        model = build(cfg["hidden"], cfg["n_interactions"], cfg["n_rbf"], cfg["cutoff"],
                      cfg.get("shared_filters", False))
        n_params = sum(p.numel() for p in model.parameters())
        converter = spk.interfaces.AtomsConverter(
            neighbor_list=trn.MatScipyNeighborList(cutoff=cfg["cutoff"]), dtype=torch.float32
        )
        for mol in job["molecules"]:
            atoms = Atoms(numbers=mol["numbers"], positions=mol["positions"])
            rng = np.random.default_rng(0)

            def call(atoms=atoms, rng=rng, model=model, converter=converter):
                moved = atoms.copy()
                moved.positions += rng.normal(0, 1e-3, moved.positions.shape)
                result = model(converter(moved))
                return result["forces"].detach()

            for _ in range(3):
                call()
            wall, cpu = [], []
            for _ in range(repeats):
                c0, t0 = time.thread_time(), time.perf_counter()
                call()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
            out.append({"config": name, "n_atoms": len(atoms), "params": n_params,
                        "median_ms": 1e3 * statistics.median(wall),
                        "cpu_ms": 1e3 * statistics.median(cpu)})
    print(json.dumps({"schnetpack": spk.__version__ if hasattr(spk, "__version__") else "2.1.1",
                      "torch": torch.__version__, "results": out}))


if __name__ == "__main__":
    main()
