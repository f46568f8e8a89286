"""What it pays that each atom has its own reach in ``StudentVerlet``'s margin list; JSON out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and molecule
(9/20/40/76 atoms, 300 K NVE, 0.5 fs, ``compile=True``, 1 thread), two ``StudentVerlet``
runs on their own calculators (the same program), alternating in blocks of ``--block``
steps, medians over ``--rounds`` rounds (the first a warm-up):

  per_atom_us   the default: the list is redrawn when an atom moves beyond half the
                distance by which its nearest pair missing from the list was beyond the
                cutoff (an atom with no missing pair may go anywhere)
  uniform_us    the rule before session 24: redrawn when any atom moves margin / 2

and ``uniform_over_per_atom`` (per-round median; > 1: per-atom reach is faster), with each
run's margin-list draws per 1000 steps (``*_draws_per_1000``) and whether its list was
pruned. The molecules' lists hold every pair as candidates, so ``margin / 2`` is a valid
reach for both runs.

Usage: .venv/bin/python benchmarks/md_list_reach.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def uniform_reach(call) -> None:
    """Make the ``StudentVerlet`` behind ``call`` (after its first step) give every atom the
    reach margin / 2 whenever its list lacks a pair (and any reach when it has them all),
    from its next draw on."""
    state = call.dyn._state
    per_atom = state._inverse_reaches

    def uniform(lengths, n_atoms):
        weights = per_atom(lengths, n_atoms)
        return np.full(n_atoms, 4.0 / state.margin**2 if weights.any() else 0.0)

    state._inverse_reaches = uniform


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf

    out = []
    for n, calls in inf.compiled_verlet_calls(presets, {"per_atom": None, "uniform": None}):
        for (_, mode), call in calls.items():
            call()  # makes the pair list (and builds or loads the program)
            if mode == "uniform":
                uniform_reach(call)
        start = {key: (call.dyn.fast_steps, call.dyn.list_draws) for key, call in calls.items()}
        times = inf.timed_blocks(calls, rounds, block)
        for p in presets:
            row = {"preset": p, "n_atoms": n,
                   **inf.versus_columns(times, p, "per_atom", "uniform")}
            for mode in ("per_atom", "uniform"):
                dyn = calls[(p, mode)].dyn
                steps, draws = start[(p, mode)]
                row[f"{mode}_draws_per_1000"] = round(
                    1000 * (dyn.list_draws - draws) / max(dyn.fast_steps - steps, 1), 1)
                row[f"{mode}_pruned"] = bool(dyn._state.prune)
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    import inference as inf

    inf.md_blocks_main("md_list_reach", __doc__.splitlines()[0], measure, rounds=10,
                       block=400)


if __name__ == "__main__":
    main()
