"""What a pair-list draw costs in MD: vesin's Verlet candidates against all pairs; JSON out.

What ``md.fast.ALL_PAIRS_MAX_ATOMS`` rests on. A draw is what the fast path does when its
pairs must be renewed: bring the candidate list up to date, measure the candidates and keep
those within the cutoff plus a margin (``VerletNeighborList.update``, ``squared_lengths``,
``pairs_within``). Three kinds, each through ``VerletNeighborList`` itself:

  vesin_rebuild_us   vesin builds new candidates (cutoff + skin), then the draw
  vesin_draw_us      the draw from vesin's current candidates (no rebuild)
  all_pairs_draw_us  the draw from every pair of the molecule (its candidates never need
                     rebuilding)

Each is timed right after a call of a compiled ``tiny`` program (the preset's architecture,
random weights: speed does not depend on them), as in an MD step, where the program has
just taken over the caches; ``--back-to-back`` adds the same calls timed in a tight loop,
which is how a microbenchmark would see them. Medians of ``--repeats``, 1 thread.
Structures: the 9/20/40/76-atom molecules of ``inference.py`` and compact random clusters
of 100-300 atoms (0.1 atoms/Å^3, no two closer than 1 Å). In MD, vesin's candidates are
rebuilt about once every 2-3 draws (skin 0.5 Å against a margin of 0.2 Å), so all pairs pay
where ``all_pairs_draw_us`` < ``vesin_draw_us`` + ``vesin_rebuild_us`` / 3.

Usage: .venv/bin/python benchmarks/pair_list_draws.py --out runs/bench/pair_list_draws.json
Never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CLUSTER_SIZES = (100, 128, 160, 200, 300)
MARGIN = 0.2  # Å, StudentVerlet's default margin


def random_cluster(n_atoms: int, seed: int = 0) -> np.ndarray:
    """(n, 3) Å: uniform in a sphere at 0.1 atoms/Å^3, no two atoms closer than 1 Å."""
    rng = np.random.default_rng(seed)
    radius = (3 * n_atoms / (4 * np.pi * 0.1)) ** (1 / 3)
    points: list[np.ndarray] = []
    while len(points) < n_atoms:
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) < radius and all(np.linalg.norm(p - q) > 1.0 for q in points):
            points.append(p)
    return np.array(points)


def structures() -> dict[str, np.ndarray]:
    import inference as inf

    from mlff_distiller.structures.sources import embed_conformers

    out = {f"molecule_{n}": embed_conformers(smiles, 1, seed=0)[0].positions
           for n, smiles in inf.MOLECULES.items()}
    out.update({f"cluster_{n}": random_cluster(n) for n in CLUSTER_SIZES})
    return out


def program_call():
    """A compiled `tiny` program's call on a 20-atom molecule (what runs between draws)."""
    import inference as inf
    import torch

    from mlff_distiller.data.neighbors import neighbor_list
    from mlff_distiller.md.fast import CompiledEnergyAndForces, FastForceField
    from mlff_distiller.models.presets import build_student
    from mlff_distiller.structures.sources import embed_conformers

    model = build_student("tiny").float().eval()
    program = CompiledEnergyAndForces(FastForceField(model))
    atoms = embed_conformers(inf.MOLECULES[20], 1, seed=0)[0]
    pairs, _ = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, model.cutoff,
                             full_list=False)
    args = (torch.tensor(atoms.positions, dtype=torch.float32),
            program.fast.species(torch.tensor(atoms.numbers)), torch.as_tensor(pairs), None,
            torch.zeros(len(atoms), dtype=torch.long), 1)
    program(*args)
    return lambda: program(*args), model.cutoff


def draws(positions: np.ndarray, cutoff: float, skin: float):
    """The three draws on ``positions`` as functions, and the two lists they use."""
    from mlff_distiller.md.fast import VerletNeighborList

    cell, pbc = np.zeros((3, 3)), np.zeros(3, bool)
    vesin = VerletNeighborList(cutoff, skin, all_pairs_max_atoms=0)
    every = VerletNeighborList(cutoff, skin, all_pairs_max_atoms=len(positions))

    def draw(nl):
        nl.update(positions, cell, pbc)
        return nl.pairs_within(positions, cell, MARGIN, nl.squared_lengths(positions, cell))

    def rebuild():
        return draw(VerletNeighborList(cutoff, skin, all_pairs_max_atoms=0))

    draw(vesin)
    draw(every)
    calls = {"vesin_rebuild_us": rebuild, "vesin_draw_us": lambda: draw(vesin),
             "all_pairs_draw_us": lambda: draw(every)}
    return calls, vesin, every


def measure(repeats: int, back_to_back: bool, skin: float) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    program, cutoff = program_call()
    rows = []
    for name, positions in structures().items():
        calls, vesin, every = draws(positions, cutoff, skin)
        same = {tuple(p) for p in calls["vesin_draw_us"]()[0].T.tolist()} == {
            tuple(p) for p in calls["all_pairs_draw_us"]()[0].T.tolist()}
        row = {"structure": name, "n_atoms": len(positions),
               "vesin_candidates": int(vesin.pairs.shape[1]),
               "all_pairs": int(every.pairs.shape[1]), "same_pairs": same}
        modes = [("", True)] + ([("back_to_back_", False)] if back_to_back else [])
        for prefix, after_program in modes:
            for key, call in calls.items():
                times = []
                for _ in range(repeats):
                    if after_program:
                        program()
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                row[prefix + key] = round(1e6 * statistics.median(times), 1)
        row["all_pairs_over_vesin_per_draw"] = round(
            row["all_pairs_draw_us"] / (row["vesin_draw_us"] + row["vesin_rebuild_us"] / 3), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/pair_list_draws.json")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--skin", type=float, default=0.5, help="vesin's Verlet skin, Å")
    parser.add_argument("--back-to-back", action="store_true")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if not args.skin > 0:
        parser.error(f"--skin must be a positive number of Å, got {args.skin}")
    from mlff_distiller.fileio import write_json
    from mlff_distiller.md.fast import ALL_PAIRS_MAX_ATOMS

    rows = measure(args.repeats, args.back_to_back, args.skin)
    write_json(args.out, {"benchmark": "pair_list_draws", "repeats": args.repeats,
                          "skin": args.skin, "margin": MARGIN,
                          "all_pairs_max_atoms": ALL_PAIRS_MAX_ATOMS, "rows": rows})
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
