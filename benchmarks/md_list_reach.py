"""What it pays that ``StudentVerlet`` watches the pairs its margin list lacks; JSON out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and molecule
(9/20/40/76 atoms, 300 K NVE, 0.5 fs, ``compile=True``, 1 thread), two ``StudentVerlet``
runs on their own calculators (the same program), alternating in blocks of ``--block``
steps, medians over ``--rounds`` rounds (the first a warm-up):

  watched_us    the default (session 26): the list is redrawn when a pair it lacks within
                ``verlet.WATCH_BAND`` of cutoff + margin comes within the cutoff (measured
                every step, in the compiled program), or an atom moves far enough for a
                farther pair to
  per_atom_us   the rule of sessions 24-25: redrawn when an atom moves beyond half the
                distance by which its nearest pair missing from the list was beyond the
                cutoff at the draw (an atom with no missing pair may go anywhere)

and ``per_atom_over_watched`` (per-round median; > 1: watching is faster), with each run's
margin-list draws per 1000 steps (``*_draws_per_1000``) and whether its list ended pruned.

Usage: .venv/bin/python benchmarks/md_list_reach.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def per_atom_inverse_reaches(lengths: np.ndarray, neighbors, margin: float,
                             n_atoms: int) -> np.ndarray:
    """Sessions 24-25's 1 / reach_i^2 (n,) Å^-2 of a margin list drawn from candidates whose
    squared lengths are ``lengths`` (P,) Å^2: reach_i is half the least distance by which a
    candidate of atom i missing from the list (or any pair the candidates lack) is beyond
    the cutoff; 0 for an atom whose pairs are all listed."""
    nearest = np.full(n_atoms, np.inf)  # Å^2, each atom's nearest missing candidate
    missing = lengths >= (neighbors.cutoff + margin) ** 2
    if missing.any():
        first, second = neighbors.pairs[:, missing]
        np.minimum.at(nearest, first, lengths[missing])
        np.minimum.at(nearest, second, lengths[missing])
    beyond = np.minimum(np.sqrt(nearest) - neighbors.cutoff, neighbors.unlisted_beyond())
    return 4.0 / (beyond * beyond)


def per_atom_reach(call) -> None:
    """Make the ``StudentVerlet`` behind ``call`` (after its first step) follow sessions
    24-25's rule: from a redraw at its next step on, each list watches no pair and gives
    each atom its own reach."""
    state = call.dyn._state
    draw = state._draw

    def old_rule(positions, atoms, counts):
        draw(positions, atoms, counts)
        neighbors = state.calc.neighbors
        lengths = neighbors.squared_lengths(positions, atoms.cell.array)
        weights = per_atom_inverse_reaches(lengths, neighbors, state.margin, len(positions))
        state._inverse_reach_squared = weights
        state._reach_input = torch.from_numpy(weights)
        state._set_watch(np.zeros((2, 0), dtype=np.int64), None)  # molecules only here

    state._draw = old_rule
    state.reference = state._next_reach_used = None  # the next step draws a list


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf

    out = []
    for n, calls in inf.compiled_verlet_calls(presets, {"watched": None, "per_atom": None}):
        for (_, mode), call in calls.items():
            call()  # makes the pair list (and builds or loads the program)
            if mode == "per_atom":
                per_atom_reach(call)
        start = {key: (call.dyn.fast_steps, call.dyn.list_draws) for key, call in calls.items()}
        times = inf.timed_blocks(calls, rounds, block)
        for p in presets:
            row = {"preset": p, "n_atoms": n,
                   **inf.versus_columns(times, p, "watched", "per_atom")}
            for mode in ("watched", "per_atom"):
                dyn = calls[(p, mode)].dyn
                steps, draws = start[(p, mode)]
                row[f"{mode}_draws_per_1000"] = round(
                    1000 * (dyn.list_draws - draws) / max(dyn.fast_steps - steps, 1), 1)
                row[f"{mode}_pruned"] = bool(dyn._state.prune)
                row[f"{mode}_pairs"] = int(dyn._state.pairs.shape[1])
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    import inference as inf

    inf.md_blocks_main("md_list_reach", __doc__.splitlines()[0], measure, rounds=10,
                       block=400)


if __name__ == "__main__":
    main()
