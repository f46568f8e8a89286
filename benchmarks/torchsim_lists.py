"""torch-sim forward calls on kept Verlet lists against neighbour lists built anew; JSON out.

``md.torchsim.StudentModel`` keeps one Verlet list per system between calls (session 30);
before, every call built each system's graph (vesin's full list, collated) and halved it
again (``md.fast.fast_arguments``). Both run here on the same state, alternating in blocks
of ``--block`` calls per round, medians over ``--rounds`` rounds, 1 thread: per preset,
float32 and float64 (torch-sim's default), eager and ``compile=True``, a batch of 8 RDKit
conformers of the 9 / 20 / 40-atom molecules of ``inference.py``. The state is fixed, so
the kept lists are never rebuilt: this is the per-call cost between rebuilds (a molecule of
up to ``ALL_PAIRS_MAX_ATOMS`` atoms lists all its pairs and is never rebuilt in MD either).

Rows: ``kept_ms`` / ``rebuilt_ms`` per call, ``rebuilt_over_kept``, and ``max_abs_dforces``
(eV/Å) between the two paths.

Usage: .venv/bin/python benchmarks/torchsim_lists.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inference  # noqa: E402

BATCH = 8
SIZES = (9, 20, 40)


def measure(presets: list[str], rounds: int, block: int) -> list[dict]:
    import torch_sim as ts

    from mlff_distiller.md.fast import fast_arguments
    from mlff_distiller.md.torchsim import StudentModel
    from mlff_distiller.structures.sources import embed_conformers

    torch.set_num_threads(1)
    batches = {n: embed_conformers(inference.MOLECULES[n], BATCH, seed=0) for n in SIZES}
    rows = []
    for preset in presets:
        student = inference.student_model(preset)
        for dtype in (torch.float32, torch.float64):
            for compile in (False, True):
                model = StudentModel(student, dtype=dtype, compile=compile,
                                     compute_stress=False)
                for n, atoms in batches.items():
                    state = ts.io.atoms_to_state(atoms, torch.device("cpu"), dtype)
                    order = torch.argsort(state.system_idx, stable=True)
                    pbc = torch.as_tensor(state.pbc).reshape(-1).expand(3)

                    def rebuilt(calls=1, model=model, state=state, order=order, pbc=pbc):
                        # the path before session 30: graphs anew, halved again
                        for _ in range(calls):
                            graph = model._graph(state, order, pbc)
                            args = fast_arguments(model.fast, graph)
                            forces = model.energy_and_forces(*args)[1]
                        return forces

                    def kept(calls=1, model=model, state=state):
                        for _ in range(calls):
                            forces = model(state)["forces"]
                        return forces

                    dforces = (kept() - rebuilt()).abs().max().item()
                    times = inference.timed_blocks({"kept": kept, "rebuilt": rebuilt},
                                                   rounds, block)
                    kept_ms = statistics.median(times["kept"]) * 1e3
                    rebuilt_ms = statistics.median(times["rebuilt"]) * 1e3
                    row = {"preset": preset, "dtype": str(dtype).removeprefix("torch."),
                           "compile": compile, "batch": BATCH, "n_atoms": n,
                           "kept_ms": round(kept_ms, 4), "rebuilt_ms": round(rebuilt_ms, 4),
                           "rebuilt_over_kept": round(rebuilt_ms / kept_ms, 3),
                           "max_abs_dforces": dforces}
                    print(row, file=sys.stderr, flush=True)
                    rows.append(row)
    return rows


if __name__ == "__main__":
    inference.md_blocks_main("torchsim_lists", __doc__.splitlines()[0], measure,
                             rounds=9, block=10)
