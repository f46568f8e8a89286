"""What ``StudentVerlet``'s pair-list pruning pays, and whether the default's trial of both
kinds of step keeps the faster; JSON out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and molecule
(9/20/40/76 atoms, 300 K NVE, 0.5 fs, compiled, 1 thread), three ``StudentVerlet`` runs on
their own calculators, alternating in blocks of ``--block`` steps (medians over
``--rounds`` rounds, the first round a warm-up):

  margin_us   ``prune=False``: the student gets the margin list (pairs within cutoff +
              margin when it was drawn), redrawn as atoms move
  prune_us    ``prune=True``: every step, only the margin list's pairs now within the cutoff
  auto_us     ``prune=None`` (the default): from its first redraw, times steps with the
              margin list and pruned ones in alternating blocks, and keeps the faster kind
              (``md.prune_trial.PruneTrial``)

and per case what the default's trial measured (``trial_margin_us``, ``trial_prune_us``:
median µs per step of each kind, None when the run never redrew its list, so never tried
pruning), what it chose (``auto_pruned``), and ``margin_over_prune`` (> 1: pruning is
faster). The trial is right when ``auto_pruned`` goes with ``margin_over_prune`` > 1, and
``auto_us`` is then near the faster of the other two.

Usage: .venv/bin/python benchmarks/md_pair_pruning.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODES = {"margin": False, "prune": True, "auto": None}


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf

    out = []
    for n, calls in inf.compiled_verlet_calls(presets, MODES):
        times = inf.timed_blocks(calls, rounds, block)
        steps = (rounds + 1) * (block + 1)
        for p in presets:
            us = {mode: 1e6 * statistics.median(times[(p, mode)]) for mode in MODES}
            margin_dyn = calls[(p, "margin")].dyn
            auto_state = calls[(p, "auto")].dyn._state
            trial = auto_state.trial.medians_us()
            row = {"preset": p, "n_atoms": n,
                   **{f"{mode}_us": round(v, 1) for mode, v in us.items()},
                   "margin_over_prune": round(us["margin"] / us["prune"], 3),
                   "trial_margin_us": trial["margin_us"],
                   "trial_prune_us": trial["prune_us"],
                   "auto_pruned": bool(auto_state.prune),
                   "margin_list_complete": bool(margin_dyn._state.complete),
                   "draws_per_100_steps": {
                       mode: round(100 * calls[(p, mode)].dyn.list_draws / steps, 1)
                       for mode in MODES}}
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    import inference as inf

    inf.md_blocks_main("md_pair_pruning", __doc__.splitlines()[0], measure, rounds=8, block=100)


if __name__ == "__main__":
    main()
