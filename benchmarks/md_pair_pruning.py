"""What ``StudentVerlet``'s pair-list pruning pays, and where ``PRUNE_ABOVE_S`` puts it; JSON
out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and molecule
(9/20/40/76 atoms, 300 K NVE, 0.5 fs, compiled, 1 thread), three ``StudentVerlet`` runs on
their own calculators, alternating in blocks of ``--block`` steps (medians over
``--rounds`` rounds, the first round a warm-up):

  margin_us   ``prune=False``: the student gets the margin list (pairs within cutoff +
              margin when it was drawn), redrawn as atoms move
  prune_us    ``prune=True``: every step, only the margin list's pairs now within the cutoff
  auto_us     ``prune=None`` (the default): starts with the margin list and prunes from the
              first redraw where the estimated cost of the margin's extra pairs (their share
              of the list x the student's time per step) exceeds ``PRUNE_ABOVE_S``

and per case the estimate the rule compares (``estimate_us``, from the margin run at its
end), what the default chose (``auto_pruned``), and ``margin_over_prune`` (> 1: pruning is
faster). A limit is right when the cases with ``margin_over_prune`` > 1 are those whose
estimate exceeds it.

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


def rule_estimate_us(dyn) -> float:
    """The pruning rule's estimate (µs) for ``dyn``'s margin list at the current positions:
    the share of its pairs beyond the cutoff times the student's time per step."""
    from mlff_distiller.md.fast import pair_squared_lengths

    state = dyn._state
    pairs, _, shift_vectors = state._margin_list
    lengths = pair_squared_lengths(dyn.atoms.positions, pairs, shift_vectors)
    extra_share = 1.0 - float((lengths < state._cutoff_squared).sum()) / max(pairs.shape[1], 1)
    return 1e6 * extra_share * state._student_s


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf

    from mlff_distiller.md.verlet import PRUNE_ABOVE_S

    out = []
    for n, calls in inf.compiled_verlet_calls(presets, MODES):
        times = inf.timed_blocks(calls, rounds, block)
        steps = (rounds + 1) * (block + 1)
        for p in presets:
            us = {mode: 1e6 * statistics.median(times[(p, mode)]) for mode in MODES}
            margin_dyn = calls[(p, "margin")].dyn
            row = {"preset": p, "n_atoms": n,
                   **{f"{mode}_us": round(v, 1) for mode, v in us.items()},
                   "margin_over_prune": round(us["margin"] / us["prune"], 3),
                   "estimate_us": round(rule_estimate_us(margin_dyn), 1),
                   "prune_above_us": 1e6 * PRUNE_ABOVE_S,
                   "auto_pruned": bool(calls[(p, "auto")].dyn._state.prune),
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
