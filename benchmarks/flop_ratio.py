"""Matmul FLOPs of each preset's energy pass (torch FlopCounterMode) at 9/20/40/76 atoms,
and the original/tiny and original/ultra-tiny ratios: the ceiling a compute-bound student
could reach, to read beside the measured latency ratios of benchmarks/inference.py.

FlopCounterMode counts matrix products only (not gathers, scatters or elementwise work),
and the force backward pass cannot be traced by it; the backward costs about twice the
forward for every preset alike, so the ratios hold for energy + forces.

Usage: .venv/bin/python benchmarks/flop_ratio.py   (prints JSON)
"""

from __future__ import annotations

import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from mlff_distiller import build_student
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.testing import random_molecule

PRESETS = ("original", "tiny", "ultra-tiny")


def main() -> None:
    rows = []
    for n_atoms in (9, 20, 40, 76):
        atoms = random_molecule(n_atoms, seed=1)
        flops, edges = {}, None
        for preset in PRESETS:
            model = build_student(preset, elements=[1, 6, 7, 8])
            graph = atoms_to_graph(atoms, model.cutoff)
            edges = int(graph["edge_index"].shape[1])
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(graph, compute_forces=False)
            flops[preset] = counter.get_total_flops()
        rows.append({"n_atoms": n_atoms, "n_edges": edges,
                     "energy_matmul_mflops": {p: f / 1e6 for p, f in flops.items()},
                     "original_over_tiny": flops["original"] / flops["tiny"],
                     "original_over_ultra_tiny": flops["original"] / flops["ultra-tiny"]})
    print(json.dumps({"benchmark": "flop_ratio", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
