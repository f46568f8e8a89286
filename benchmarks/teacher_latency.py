"""Teacher latency per structure (energy + forces) on 9 / 20 / 40-atom molecules; prints JSON.

    .venv/bin/python benchmarks/teacher_latency.py [--teachers sevennet,xtb] [--repeats 10]
        [--threads 1]

Median wall time of ``teacher.label([atoms])`` over repeats (each on a slightly rattled
copy, so no calculator cache is hit) after one warm-up call, for
RDKit/MMFF conformers of ethanol (9 atoms), paracetamol (20) and diphenhydramine (40).
Never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from mlff_distiller.structures.sources import embed_conformers
from mlff_distiller.teachers import load_teacher

MOLECULES = {
    "ethanol": "CCO",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "diphenhydramine": "CN(C)CCOC(c1ccccc1)c1ccccc1",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", default="sevennet,xtb")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    structures = {name: embed_conformers(smiles, 1, seed=0)[0]
                  for name, smiles in MOLECULES.items()}
    results = []
    for spec in args.teachers.split(","):
        start = time.perf_counter()
        teacher = load_teacher(spec)
        load_s = time.perf_counter() - start
        for name, atoms in structures.items():
            teacher.label([atoms])  # warm-up
            times = []
            for k in range(args.repeats):
                moved = atoms.copy()  # a new geometry each time: ASE calculators cache results
                moved.rattle(1e-3, seed=k)
                t0 = time.perf_counter()
                (labels,) = teacher.label([moved])
                times.append(time.perf_counter() - t0)
            assert hasattr(labels, "energy"), f"{spec} failed on {name}: {labels}"
            results.append({"teacher": teacher.name, "molecule": name, "n_atoms": len(atoms),
                            "median_ms": round(1e3 * statistics.median(times), 2),
                            "min_ms": round(1e3 * min(times), 2),
                            "structures_per_s": round(1 / statistics.median(times), 1),
                            "repeats": args.repeats, "teacher_load_s": round(load_s, 2)})
    print(json.dumps({"benchmark": "teacher_latency", "torch_threads": args.threads,
                      "cpu": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "results": results}, indent=2))


if __name__ == "__main__":
    main()
