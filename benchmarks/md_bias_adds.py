"""Whether a compiled student's MD step pays for adding biases outside its products; JSON out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and molecule
(9/20/40/76 atoms, 300 K NVE, 0.5 fs, ``compile=True``, 1 thread), two ``StudentVerlet``
runs on their own calculators, alternating in blocks of ``--block`` steps, medians over
``--rounds`` rounds (the first a warm-up):

  separate_us  the program built with ``md.bias_adds.UnfuseBiasAdds`` (each ``addmm`` a
               matrix product, its bias added in the elementwise kernel that follows)
  addmm_us     the program built without it (Inductor's ``addmm``, which copies the bias
               into its output first)

and ``addmm_over_separate`` (per-round median; > 1: separate adds are faster), with
``default``, which of the two ``compile=True`` builds for the preset
(``md.bias_adds.unfuses_bias_adds``).

Usage: .venv/bin/python benchmarks/md_bias_adds.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def first_step_with(call, unfuse: bool) -> None:
    """Take ``call``'s first step (which builds or loads its program) with the bias-add
    rule forced to ``unfuse``."""
    from mlff_distiller.md import bias_adds

    rule = bias_adds.unfuses_bias_adds
    bias_adds.unfuses_bias_adds = lambda hidden: unfuse
    try:
        call()
    finally:
        bias_adds.unfuses_bias_adds = rule


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf

    from mlff_distiller.md.bias_adds import unfuses_bias_adds
    from mlff_distiller.models.presets import preset_config

    out = []
    for n, calls in inf.compiled_verlet_calls(presets, {"separate": None, "addmm": None}):
        for (_, mode), call in calls.items():
            first_step_with(call, mode == "separate")
        times = inf.timed_blocks(calls, rounds, block)
        for p in presets:
            hidden = preset_config(p).hidden
            row = {"preset": p, "n_atoms": n,
                   **inf.versus_columns(times, p, "separate", "addmm"),
                   "default": "separate" if unfuses_bias_adds(hidden) else "addmm"}
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    import inference as inf

    inf.md_blocks_main("md_bias_adds", __doc__.splitlines()[0], measure, rounds=10,
                       block=200)


if __name__ == "__main__":
    main()
