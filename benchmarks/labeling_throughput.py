"""Labeling throughput (structures/s): serial vs local worker processes, per teacher.

Builds a pool of rattled small organic molecules (ASE's G2 set, elements H C N O F S Cl),
labels it with ``mlff_distiller.data.labeling.label_structures`` for each teacher and worker
count, and prints JSON. ``structures_per_second`` counts labeling + chunk writing only;
``startup_seconds`` (spawning workers, loading teachers) is reported separately.

    .venv/bin/python benchmarks/labeling_throughput.py --teachers sevennet,xtb --workers 1,2 \\
        --structures 96 --out labeling_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_pool(path: Path, n: int, seed: int = 0, max_atoms: int = 20) -> int:
    import ase.io
    from ase.build import molecule
    from ase.collections import g2

    allowed = {1, 6, 7, 8, 9, 16, 17}
    names = sorted(name for name in g2.names
                   if set(g2[name].numbers) <= allowed and 3 <= len(g2[name]) <= max_atoms)
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        mol_index = k % len(names)
        atoms = molecule(names[mol_index])
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        atoms.info["molecule_id"] = mol_index
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", default="sevennet,xtb")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--structures", type=int, default=96)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the serial run (workers get cpus // workers)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    from mlff_distiller.data.labeling import label_structures

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool.extxyz"
        n_molecules = make_pool(pool, args.structures)
        for spec in args.teachers.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                out = Path(tmp) / f"{spec}-{workers}.h5"
                wall = time.perf_counter()
                summary = label_structures(pool, spec, out, workers=workers,
                                           chunk_size=args.chunk_size, progress=False)
                results.append({
                    "teacher": summary["teacher"], "teacher_version": summary["teacher_version"],
                    "workers": workers, "backend": summary["backend"],
                    "structures": summary["n_labeled"], "failed": summary["n_failed"],
                    "structures_per_second": summary["structures_per_second"],
                    "labeling_seconds": summary["seconds"],
                    "startup_seconds": summary["startup_seconds"],
                    "wall_seconds": round(time.perf_counter() - wall, 3),
                })
                print(json.dumps(results[-1]), file=sys.stderr)
    report = {
        "benchmark": "labeling_throughput",
        "pool": {"structures": args.structures, "molecules": n_molecules,
                 "source": "ASE G2 (H C N O F S Cl, 3-20 atoms), rattled 0.05 Å"},
        "chunk_size": args.chunk_size, "serial_torch_threads": args.threads,
        "load_average_1min": os.getloadavg()[0],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
