"""Where a compiled student's MD step goes: the compiled program alone, one velocity Verlet
step through the ASE calculator, one ``StudentVerlet`` step (ASE's without its
bookkeeping), and one step of the MD runner (``md.runs.run_md``, StudentVerlet with its
watchdog); JSON out.

Per preset (zoo students, or ``--student PRESET=PATH`` as in ``inference.py``) and molecule
(9/20/40/76 atoms), one thread, in blocks of ``--block`` calls per round (MD steps in one
``run``) with the presets in turn (as ``inference.presets_head_to_head``), medians over
``--rounds`` rounds:

  program_us          the AOTInductor energy + forces program on the starting geometry's
                      pairs (fixed inputs)
  md_step_us          ASE VelocityVerlet step with ``StudentCalculator(compile=True)``
  student_verlet_us   ``StudentVerlet`` step, compiled (its own calculator)
  ase_langevin_us     ASE Langevin step (FixCom, 300 K, 0.01/fs, as the MD runner's NVT)
                      with ``StudentCalculator(compile=True)``
  student_langevin_us ``StudentLangevin`` step, compiled, same settings
  run_md_us           ``run_md`` NVE per step over ``10 x --block`` steps (the MD
                      validation's runner; its per-run setup, the first force call
                      included, is spread over those steps as in a real run of 1,000-2,000
                      steps)

and the differences: ``calculator_and_ase_us`` (md_step - program: neighbour list, input
conversion, ASE's step and change checks), ``student_verlet_outside_program_us``
(student_verlet - program: integration, pair-list checks and draws, array conversion, and
a wider pair list) and ``watchdog_us`` (run_md - student_verlet). The time outside the program is
what limits `tiny` against `original` on small molecules.

Usage: .venv/bin/python benchmarks/md_step_breakdown.py [--student tiny=PATH] --out FILE
Never asserts on time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def program_call(model, atoms):
    """The compiled program (as ``compile=True`` builds it) on ``atoms``' pairs within the
    cutoff, inputs fixed."""
    import torch

    from mlff_distiller.data.neighbors import neighbor_list
    from mlff_distiller.md.fast import CompiledEnergyAndForces, FastForceField

    program = CompiledEnergyAndForces(FastForceField(model))
    pairs, _ = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, model.cutoff,
                             full_list=False)
    dtype = next(model.parameters()).dtype
    args = (torch.tensor(atoms.positions, dtype=dtype),
            program.fast.species(torch.tensor(atoms.numbers)), torch.as_tensor(pairs), None,
            torch.zeros(len(atoms), dtype=torch.long), 1)
    return lambda steps=1: [program(*args) for _ in range(steps)]


def langevin_call(atoms, calc, student: bool):
    """NVT steps as the MD runner takes them (FixCom, 300 K, friction 0.01/fs, 0.5 fs), one
    per call (``steps`` per call in one ``run``): ``StudentLangevin`` or ASE's ``Langevin``."""
    import numpy as np
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    from mlff_distiller.md.langevin import StudentLangevin
    from mlff_distiller.md.velocities import maxwell_boltzmann

    atoms = atoms.copy()
    maxwell_boltzmann(atoms, 300.0, np.random.default_rng(0))
    atoms.set_constraint(FixCom())
    atoms.calc = calc
    dyn = (StudentLangevin if student else Langevin)(
        atoms, timestep=0.5 * units.fs, temperature_K=300.0, friction=0.01 / units.fs,
        fixcm=False, rng=np.random.default_rng(0))
    return lambda steps=1: dyn.run(steps)


def run_md_call(atoms, calc, block: int):
    from mlff_distiller.md.runs import MDConfig, run_md

    config = MDConfig(nve_steps=block)
    return lambda: run_md(atoms, calc, config, "nve")


def breakdown(presets: list[str], rounds: int, block: int) -> list[dict]:
    import inference as inf
    import torch

    from mlff_distiller import StudentCalculator
    from mlff_distiller.structures.sources import embed_conformers

    torch.set_num_threads(1)
    calcs = {p: StudentCalculator(inf.student_model(p), compile=True) for p in presets}
    verlet_calcs = {p: StudentCalculator(calcs[p].model, compile=True) for p in presets}
    langevin_calcs = {p: StudentCalculator(calcs[p].model, compile=True) for p in presets}
    out = []
    for n, smiles in inf.MOLECULES.items():
        atoms = embed_conformers(smiles, 1, seed=0)[0]
        calls = {p: {"program": program_call(calcs[p].model, atoms),
                     "md_step": inf.md_step_call(atoms, calcs[p], ase_verlet=True),
                     "student_verlet": inf.md_step_call(atoms, verlet_calcs[p]),
                     "ase_langevin": langevin_call(atoms, calcs[p], student=False),
                     "student_langevin": langevin_call(atoms, langevin_calcs[p], student=True)}
                 for p in presets}
        runners = {p: run_md_call(atoms, calcs[p], 10 * block) for p in presets}
        times = {p: {name: [] for name in [*calls[p], "run_md"]} for p in presets}
        for _ in range(rounds + 1):  # the first round warms up
            for p in presets:
                for name, call in calls[p].items():
                    call()
                    t0 = time.perf_counter()
                    call(block)
                    times[p][name].append((time.perf_counter() - t0) / block)
                t0 = time.perf_counter()
                runners[p]()
                times[p]["run_md"].append((time.perf_counter() - t0) / (10 * block))
        for p in presets:
            us = {f"{k}_us": 1e6 * statistics.median(v[1:]) for k, v in times[p].items()}
            us["calculator_and_ase_us"] = us["md_step_us"] - us["program_us"]
            us["student_verlet_outside_program_us"] = us["student_verlet_us"] - us["program_us"]
            us["watchdog_us"] = us["run_md_us"] - us["student_verlet_us"]
            row = {"preset": p, "n_atoms": n, **{k: round(v, 1) for k, v in us.items()}}
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    import inference as inf

    inf.md_blocks_main("md_step_breakdown", __doc__.splitlines()[0], breakdown, rounds=10,
                       block=100)


if __name__ == "__main__":
    main()
