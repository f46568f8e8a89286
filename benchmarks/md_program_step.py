"""What it pays that the compiled program takes ``StudentVerlet``'s whole step; JSON out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and molecule
(9/20/40/76 atoms, 300 K NVE, 0.5 fs, ``compile=True``, 1 thread), two ``StudentVerlet``
runs on their own calculators (the same program), alternating in blocks of ``--block``
steps, medians over ``--rounds`` rounds (the first a warm-up):

  program_us   the default: the program takes each step whole (float64 integration
               included) and a step predicted to stay within the pair list's reach skips
               numpy
  numpy_us     the step before session 23: positions and momenta in numpy, the program
               called for energy and forces only (its step with a time step of zero)

and ``numpy_over_program`` (per-round median; > 1: the program's step is faster), with the
program run's ``program_steps``, ``program_retries`` and whether its list was pruned.

Usage: .venv/bin/python benchmarks/md_program_step.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def numpy_steps(call) -> None:
    """Make the ``StudentVerlet`` behind ``call`` (after its first step) take its steps in
    numpy, calling the program for energy and forces only."""
    state = call.dyn._state
    state.steps_in_program = lambda: False
    state.step_ahead_fits = lambda: False


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf

    out = []
    for n, calls in inf.compiled_verlet_calls(presets, {"program": None, "numpy": None}):
        for (_, mode), call in calls.items():
            call()  # makes the pair list (and builds or loads the program)
            if mode == "numpy":
                numpy_steps(call)
        times = inf.timed_blocks(calls, rounds, block)
        for p in presets:
            dyn = calls[(p, "program")].dyn
            row = {"preset": p, "n_atoms": n,
                   **inf.versus_columns(times, p, "program", "numpy"),
                   "program_steps": dyn.program_steps, "fast_steps": dyn.fast_steps,
                   "program_retries": dyn.program_retries, "pruned": bool(dyn._state.prune),
                   "numpy_run_program_steps": calls[(p, "numpy")].dyn.program_steps}
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    import inference as inf

    inf.md_blocks_main("md_program_step", __doc__.splitlines()[0], measure, rounds=10,
                       block=200)


if __name__ == "__main__":
    main()
