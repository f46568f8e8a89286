"""MD steps of the students on periodic water boxes: the default fast path against
``compile=True``, cost per atom as the box grows; JSON out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and box
(2^3, 4^3 and 6^3 water molecules on a cubic lattice at 1 g/cm^3, each turned at random
(seeded): 24, 192 and 648 atoms; 300 K NVE, 0.5 fs, 1 thread), two ``StudentVerlet``
runs on their own calculators, ``StudentCalculator(model)`` (``fast``) and
``StudentCalculator(model, compile=True)`` (``compiled``), alternating in blocks (medians
over ``--rounds`` rounds after a warm-up round; a block is ``--block`` steps at 24 atoms,
scaled by 24 / atoms, at least 3, each block a new run from the same start: see
:func:`from_the_start`). Per row: µs per step and per atom of each
(``fast_us_per_atom``, ``compiled_us_per_atom``), the per-round median ratio
``fast_over_compiled``, the pairs within the cutoff at the start (``pairs_per_atom``), the
program's build or cache load (``compile_s``) and, as a check that both compute the same
thing, the largest force difference between the two calculators at the start
(``start_max_abs_dforces``, eV/Å).

Usage: .venv/bin/python benchmarks/periodic_md.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BOXES = (2, 4, 6)  # water molecules per box edge
WATER_SPACING = 3.104  # Å per molecule along an edge: 1 g/cm^3


def water_box(per_edge: int, seed: int = 0):
    """``per_edge``^3 water molecules, each turned at random, in a periodic cubic cell."""
    from ase import Atoms
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    box = Atoms(cell=np.eye(3) * WATER_SPACING * per_edge, pbc=True)
    for site in np.ndindex(per_edge, per_edge, per_edge):
        water = molecule("H2O")
        water.rotate(rng.uniform(0.0, 360.0), rng.normal(size=3))
        water.translate(np.array(site) * WATER_SPACING)
        box += water
    return box


def from_the_start(atoms, calc):
    """An :func:`inference.md_step_call` for :func:`inference.timed_blocks` whose untimed
    step before each block (``call()``) starts a new run from the same 300 K start, which
    the block's steps then continue. The students never saw water: run on, a box heats by
    thousands of kelvin within 1,000 steps and can fly apart (seen at 1,350 steps), which
    would time another system than the one built."""
    import inference as inf

    runs = []

    def call(steps: int = 1):
        if steps == 1:
            runs[:] = [inf.md_step_call(atoms, calc)]
        runs[0](steps)

    return call


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf
    import torch
    from ase.neighborlist import neighbor_list

    from mlff_distiller import StudentCalculator

    torch.set_num_threads(1)
    out = []
    for preset in presets:
        model = inf.student_model(preset)
        for per_edge in BOXES:
            atoms = water_box(per_edge)
            n = len(atoms)
            calcs = {"fast": StudentCalculator(model),
                     "compiled": StudentCalculator(model, compile=True)}
            forces = {}
            for kind, calc in calcs.items():
                start = atoms.copy()
                start.calc = calc
                forces[kind] = start.get_forces()
            steps = max(3, block * 24 // n)
            calls = {(preset, kind): from_the_start(atoms, calc)
                     for kind, calc in calcs.items()}
            times = inf.timed_blocks(calls, rounds, steps)
            cols = inf.versus_columns(times, preset, "compiled", "fast")
            row = {"preset": preset, "n_atoms": n, "block": steps,
                   "fast_us_per_atom": round(cols["fast_us"] / n, 2),
                   "compiled_us_per_atom": round(cols["compiled_us"] / n, 2),
                   **cols,
                   "pairs_per_atom": round(len(neighbor_list("i", atoms, model.cutoff))
                                           / 2 / n, 1),
                   "compile_s": round(calcs["compiled"].compile_s, 3),
                   "start_max_abs_dforces": float(np.abs(forces["fast"]
                                                         - forces["compiled"]).max())}
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    import inference as inf

    inf.md_blocks_main("periodic_md", __doc__.splitlines()[0], measure, rounds=5, block=200)


if __name__ == "__main__":
    main()
