"""vesin's neighbour list on 1 thread vs its default (a thread per core), by system size;
JSON out. What ``data.neighbors.THREADED_LIST_MIN_ATOMS`` (one thread below it) rests on:
re-run it on a machine with more cores to see where threads start to pay there.

Systems: the RDKit conformers of ``benchmarks/inference.py`` (9/20/40/76-atom molecules,
cutoff 4.5 Å, ``tiny``'s 4 Å plus the 0.5 Å skin) and uniform random atoms at 0.1 per Å^3
(liquid-like), as molecules and as periodic cubes, 100-10,000 atoms, cutoff 5.5 Å
(``original``'s 5 Å plus skin). Per system and thread setting: median µs per list of
``--rounds`` rounds, the settings alternating within each round.

Usage: .venv/bin/python benchmarks/neighbor_list_threads.py [--out FILE]
Never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
THREADS = {"1 thread": 1, "default": 0}  # 0: OMP_NUM_THREADS, else every core


def systems() -> list[tuple[str, np.ndarray, np.ndarray, bool, float]]:
    """(name, positions (n, 3) Å, box (3, 3) Å, periodic, cutoff Å) of each system timed."""
    import inference as inf

    from mlff_distiller.structures.sources import embed_conformers

    out = []
    for n, smiles in inf.MOLECULES.items():
        atoms = embed_conformers(smiles, 1, seed=0)[0]
        out.append((f"molecule {n}", atoms.positions, np.zeros((3, 3)), False, 4.5))
    rng = np.random.default_rng(0)
    for n in (100, 300, 1000, 3000, 10000):
        side = (n / 0.1) ** (1 / 3)
        positions = rng.uniform(0, side, (n, 3))
        out.append((f"random {n}", positions, np.zeros((3, 3)), False, 5.5))
        out.append((f"periodic {n}", positions, np.eye(3) * side, True, 5.5))
    return out


def time_lists(positions, box, periodic: bool, cutoff: float, rounds: int) -> dict:
    """Median µs per ``vesin.NeighborList(...).compute`` for each setting of ``THREADS``."""
    from vesin import NeighborList

    calls = max(3, 30000 // len(positions))  # per round and setting
    times: dict[str, list[float]] = {name: [] for name in THREADS}
    for _ in range(rounds + 1):  # the first round warms up
        for name, n_threads in THREADS.items():
            start = time.perf_counter()
            for _ in range(calls):
                NeighborList(cutoff=cutoff, full_list=False, n_threads=n_threads).compute(
                    points=positions, box=box, periodic=periodic, quantities="ijS")
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: round(statistics.median(t[1:]), 1) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/neighbor_list_threads.json")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: expected an integer >= 1 (timed rounds per system)")
    from mlff_distiller.data.neighbors import THREADED_LIST_MIN_ATOMS
    from mlff_distiller.fileio import write_json

    rows = []
    for name, positions, box, periodic, cutoff in systems():
        us = time_lists(positions, box, periodic, cutoff, args.rounds)
        row = {"system": name, "n_atoms": len(positions), "cutoff_A": cutoff, "us": us,
               "default_over_1_thread": round(us["default"] / us["1 thread"], 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"benchmark": "neighbor_list_threads", "cpu_count": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "threaded_list_min_atoms": THREADED_LIST_MIN_ATOMS, "rows": rows}
    write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
