"""Student energy+forces latency per call: presets x molecule sizes x thread counts.

Usage:  .venv/bin/python benchmarks/student_latency.py [--repeats 30] [--out FILE.json]

Prints JSON: for each preset, molecule (20/40/80 atoms, RDKit conformers) and thread count,
the median and interquartile range of the wall time of one E+F call (neighbour list
included), warm-up excluded. Never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch
from ase import Atoms

from mlff_distiller import build_student
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.models.painn import count_parameters
from mlff_distiller.structures.sources import embed_conformers

MOLECULES = {  # name: SMILES, chosen for their atom counts with hydrogens
    "aspirin (21 atoms)": "CC(=O)Oc1ccccc1C(=O)O",
    "lauric acid (38 atoms)": "CCCCCCCCCCCC(=O)O",
    "hexacosane (80 atoms)": "CCCCCCCCCCCCCCCCCCCCCCCCCC",
}


def time_call(model, atoms: Atoms, repeats: int, warmup: int = 5) -> list[float]:
    """Wall times (s) of graph building + E+F on ``atoms``, warm-up excluded."""
    times = []
    for k in range(warmup + repeats):
        t0 = time.perf_counter()
        model(atoms_to_graph(atoms, model.cutoff))["forces"]
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    molecules = {name: embed_conformers(smi, 1, seed=0)[0] for name, smi in MOLECULES.items()}
    results = []
    for preset in ("original", "tiny", "ultra-tiny"):
        model = build_student(preset, seed=0).eval()
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            for name, atoms in molecules.items():
                times = np.array(time_call(model, atoms, args.repeats)) * 1e3
                q1, q3 = np.percentile(times, [25, 75])
                results.append({
                    "preset": preset, "parameters": count_parameters(model), "threads": threads,
                    "molecule": name, "n_atoms": len(atoms),
                    "median_ms": round(float(statistics.median(times)), 3),
                    "iqr_ms": [round(float(q1), 3), round(float(q3), 3)],
                    "repeats": args.repeats,
                })
    report = {
        "benchmark": "student_latency",
        "what": "energy+forces per call incl. neighbour list, float32, CPU",
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        from mlff_distiller.fileio import write_text

        write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
