"""Inference speed of the students vs schnetpack's PaiNN, SevenNet-0 and GFN2-xTB; JSON out.

One run measures everything (students and peers under the same machine load):
energy + forces per call at 9 / 20 / 40 / 76 atoms (RDKit/MMFF conformers of ethanol,
paracetamol, diphenhydramine, atorvastatin), medians of repeats, wall time.

* students, 1 thread, through ``StudentCalculator``: ``eager`` (graph + eager model per
  call), ``fast`` (default fast path, neighbour list rebuilt every call: a single point),
  ``md_step`` (one ``StudentVerlet`` step, the MD runner's NVE integrator: ASE's step
  without its bookkeeping, pair list reused) and ``ase_md_step`` (one step of ASE's
  ``VelocityVerlet`` through the calculator, Verlet skin reuse), ``compiled``
  (``compile=True``: fast path compiled by AOTInductor, neighbour list every call; build
  time ``compile_s``, and ``cached_load_s``, the load of that build from the program
  cache), ``compiled_md_step`` and ``compiled_ase_md_step`` (the MD steps compiled), the
  first also at 2 threads (``compiled_md_step_2t``; the MD ratio vs SevenNet takes each
  side's best thread count and the faster integrator);
* the presets head to head (``presets_head_to_head``): compiled MD steps of the three
  presets on the same molecule with both integrators at 1 and 2 threads, alternating in
  blocks of ``--block`` steps (caches warm as in a real run, the machine's drift shared by
  presets and thread counts alike); per-round ratios to ``original`` at 1 and at 2 threads
  and with each on its fastest thread count that round;
* schnetpack 2.1.1 PaiNN with each preset's sizes, 1 thread, through its ``AtomsConverter``
  (matscipy neighbour list) + model, in ``.venv-bench`` (worker:
  ``benchmarks/inference_schnetpack.py``);
* SevenNet-0 through its ASE calculator at 1 and 2 threads (best kept), GFN2-xTB (tblite);
* head to head at 9 atoms: GFN2-xTB and the compiled students called in turn on the same
  rattled geometries (``head_to_head_xtb``: the median per-round ratio is immune to the
  machine's speed drifting between the sections above);
* batched throughput (atoms/s) for batches 1-64 (sizes timed in turn per round;
  ``batched_64_over_8`` gives the growth from 8 to 64): ``batched_chunked`` is the product's
  batched path (what torch-sim's ``StudentModel`` calls: ``batched_energy_and_forces``,
  whole structures in calls of at most ``CPU_CHUNK_PAIRS`` pairs, glibc tuned by
  ``tune_allocator``), ``batched_compiled`` its ``compile=True`` (the AOTInductor program,
  one structure per call; unless ``--compile ''``), timed in the same rounds as
  ``batched_chunked`` (``batched_compiled_over_chunked``: the throughput ratio per preset,
  size and batch); the others are the fast model in one call per batch with glibc malloc
  as is, glibc tuned and, when ``libtcmalloc_minimal.so.4`` is installed
  (``apt-get install libtcmalloc-minimal4``), tcmalloc via ``LD_PRELOAD``.

Students are the packaged zoo students (random weights where not shipped), timed through
``StudentCalculator``, which tunes glibc's allocator.

Setup of the schnetpack environment (once; pinned; ``--no-deps`` because schnetpack's
declared deps would pull another torch):

    python3.11 -m venv .venv-bench
    .venv-bench/bin/pip install -c constraints.txt torch==2.13.0 numpy==2.4.6 ase==3.29.0
    .venv-bench/bin/pip install --no-deps schnetpack==2.1.1 matscipy==1.3.1 dirsync==2.2.6 \
        fasteners==0.20 tqdm==4.70.1 pytorch-lightning==2.6.6 lightning-utilities==0.15.3 \
        torchmetrics==1.9.0 PyYAML==6.0.3 h5py==3.16.0 omegaconf==2.4.0 torch-ema==0.3

Run (about 12 minutes on 2 cores):

    .venv/bin/python benchmarks/inference.py --out runs/bench/inference.json

Never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MOLECULES = {
    9: "CCO",
    20: "CC(=O)Nc1ccc(O)cc1",
    40: "CN(C)CCOC(c1ccccc1)c1ccccc1",
    76: "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CCC(O)CC(O)CC(=O)O",
}
ELEMENTS = (1, 6, 7, 8, 9, 16, 17)
PRESETS = ("original", "tiny", "ultra-tiny")
BATCHES = (1, 8, 16, 32, 64)
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def median_ms(call, repeats: int, warmup: int = 2) -> tuple[float, float]:
    """Medians (wall ms, CPU ms of this thread). On a shared, loaded machine the CPU time of
    a one-thread call is the steadier measure of its work (wall time adds waiting)."""
    return interleaved_ms({"call": call}, repeats, warmup)["call"]


def rattled_calls(atoms, calc):
    """A get_forces call on a new geometry each time (ASE calculators cache results)."""
    rng = np.random.default_rng(0)
    atoms = atoms.copy()
    atoms.calc = calc
    start = atoms.positions.copy()

    def call():
        atoms.positions = start + rng.normal(0, 1e-3, start.shape)
        return atoms.get_forces()

    return call


def md_step_call(atoms, calc, ase_verlet: bool = False, prune: bool | None = None):
    """NVE steps from a 300 K start, one per call (``steps`` per call, in one ``run`` as an
    MD run makes them): ``StudentVerlet`` (the MD runner's integrator; ASE's step for other
    calculators) with its ``prune`` setting, or ASE's ``VelocityVerlet``. The call's ``dyn``
    is the integrator."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from mlff_distiller.md.velocities import maxwell_boltzmann
    from mlff_distiller.md.verlet import StudentVerlet

    atoms = atoms.copy()
    maxwell_boltzmann(atoms, 300.0, np.random.default_rng(0))
    atoms.calc = calc
    if ase_verlet:
        dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    else:
        dyn = StudentVerlet(atoms, timestep=0.5 * units.fs, prune=prune)

    def call(steps: int = 1):
        dyn.run(steps)

    call.dyn = dyn
    return call


STUDENT_FILES: dict[str, str] = {}  # preset -> checkpoint timed instead of the zoo's (--student)


def use_student_files(parser: argparse.ArgumentParser, items: list[str]) -> None:
    """Record ``--student PRESET=PATH`` items in :data:`STUDENT_FILES`; a bad one is a
    parser error naming it."""
    for item in items:
        preset, _, path = item.partition("=")
        if preset not in PRESETS or not Path(path).is_file():
            parser.error(f"--student {item!r}: expected PRESET=PATH with PRESET one of "
                         f"{', '.join(PRESETS)} and PATH an existing checkpoint file")
        STUDENT_FILES[preset] = path


def add_student_arguments(parser: argparse.ArgumentParser) -> None:
    """``--presets`` (which presets to time) and ``--student PRESET=PATH`` (a checkpoint to
    time as PRESET), for the scripts that time students; read back by :func:`chosen_presets`."""
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--student", action="append", default=[], metavar="PRESET=PATH",
                        help="time this checkpoint as PRESET instead of the zoo student")


def chosen_presets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The ``--presets`` asked for, after recording ``--student`` items
    (:func:`use_student_files`); an unknown preset is a parser error."""
    presets = args.presets.split(",")
    unknown = sorted(set(presets) - set(PRESETS))
    if unknown:
        parser.error(f"--presets: unknown {unknown}; choose from {', '.join(PRESETS)}")
    use_student_files(parser, args.student)
    return presets


def md_blocks_main(name: str, description: str, measure, rounds: int, block: int) -> None:
    """The command line of a benchmark that times students' MD steps in rounds of blocks
    (``md_step_breakdown.py``, ``md_pair_pruning.py``): ``--out``, ``--rounds``,
    ``--block`` and the student arguments; writes ``{"benchmark": name, "rounds", "block",
    "students", "rows": measure(presets, rounds, block)}`` as JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=f"runs/bench/{name}.json")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--block", type=int, default=block)
    add_student_arguments(parser)
    args = parser.parse_args()
    presets = chosen_presets(parser, args)
    from mlff_distiller.fileio import write_json

    result = {"benchmark": name, "rounds": args.rounds, "block": args.block,
              "students": dict(STUDENT_FILES),
              "rows": measure(presets, args.rounds, args.block)}
    write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)


def student_model(preset: str):
    """The student timed as ``preset``: the checkpoint given by ``--student PRESET=PATH``,
    else the packaged zoo student (trained, so MD steps follow real dynamics: random
    weights make atoms fly apart or collapse, changing the pair count), else a randomly
    initialised one."""
    from mlff_distiller import build_student
    from mlff_distiller.models.checkpoint import load_student
    from mlff_distiller.models.presets import preset_config
    from mlff_distiller.models.zoo import zoo_path

    path = STUDENT_FILES.get(preset) or zoo_path(f"sevennet-organic-{preset}")
    if path is None:
        return build_student(preset, elements=ELEMENTS, seed=0).eval()
    model = load_student(path)
    timed, wanted = model.config.to_dict(), preset_config(preset).to_dict()
    timed.pop("elements"), wanted.pop("elements")
    if timed != wanted:
        print(f"note: timing {path} as {preset!r}, whose config {timed} is not the preset's "
              f"{wanted} (pass --student {preset}=PATH for a student of the preset)",
              file=sys.stderr, flush=True)
    return model


def students(mols, repeats: int, compile_presets: list[str]
             ) -> tuple[list[dict], dict, dict]:
    """(rows per preset and size, {preset: compiled single-point calculator},
    {preset: compiled MD calculator})."""
    from mlff_distiller import StudentCalculator
    from mlff_distiller.models.painn import count_parameters

    out, compiled_calcs, md_calcs = [], {}, {}
    for preset in PRESETS:
        model = student_model(preset)
        row = {"preset": preset, "params": count_parameters(model),
               "config": model.config.to_dict()}
        compiled = compiled_md = None
        if preset in compile_presets:
            compiled = compiled_calcs[preset] = StudentCalculator(model, skin=0.0,
                                                                  compile=True)
            t0 = time.perf_counter()
            rattled_calls(mols[9], compiled)()
            row["compile_s"] = round(time.perf_counter() - t0, 1)
            compiled_md = md_calcs[preset] = StudentCalculator(model, compile=True)  # MD
        for n, atoms in mols.items():
            r = dict(row, n_atoms=n)
            calls = {
                "eager": rattled_calls(atoms, StudentCalculator(model, fast=False)),
                "fast": rattled_calls(atoms, StudentCalculator(model, skin=0.0)),
                "md_step": md_step_call(atoms, StudentCalculator(model)),
                "ase_md_step": md_step_call(atoms, StudentCalculator(model), ase_verlet=True),
            }
            if compiled is not None:
                calls["compiled"] = rattled_calls(atoms, compiled)
                calls["compiled_md_step"] = md_step_call(atoms, compiled_md)
                calls["compiled_ase_md_step"] = md_step_call(
                    atoms, StudentCalculator(model, compile=True), ase_verlet=True)
            for name, call in calls.items():
                r[f"{name}_ms"], r[f"{name}_cpu_ms"] = median_ms(call, repeats)
            if compiled_md is not None:  # built above; this calculator found it cached
                r["cached_load_s"] = round(compiled_md.compile_s, 3)
            if compiled is not None:  # MD at 2 threads too, as SevenNet gets its best count
                torch.set_num_threads(2)
                r["compiled_md_step_2t_ms"], _ = median_ms(calls["compiled_md_step"], repeats)
                torch.set_num_threads(1)
            out.append(r)
            print(f"  {preset:10s} {n:3d} atoms  " + "  ".join(
                f"{k}={v:.2f}" for k, v in r.items() if k.endswith("_ms")), flush=True)
    return out, compiled_calcs, md_calcs


def compiled_verlet_calls(presets: list[str], prunes: dict[str, bool | None]):
    """For each molecule of :data:`MOLECULES` (1 thread): its atom count and, per preset and
    mode, a :func:`md_step_call` of ``StudentVerlet`` with ``prune=prunes[mode]`` on its
    own compiled calculator, keyed ``(preset, mode)``."""
    from mlff_distiller import StudentCalculator
    from mlff_distiller.structures.sources import embed_conformers

    torch.set_num_threads(1)
    models = {p: student_model(p) for p in presets}
    for n, smiles in MOLECULES.items():
        atoms = embed_conformers(smiles, 1, seed=0)[0]
        yield n, {(p, mode): md_step_call(atoms, StudentCalculator(models[p], compile=True),
                                          prune=prune)
                  for p in presets for mode, prune in prunes.items()}


def timed_blocks(calls: dict, rounds: int, block: int) -> dict:
    """Per key, the seconds per step of ``call(block)`` in each of ``rounds`` rounds, the
    calls in turn (each block after one untimed step), after one untimed warm-up round."""
    times = {key: [] for key in calls}
    for r in range(rounds + 1):  # the first round warms up
        for key, call in calls.items():
            call()
            t0 = time.perf_counter()
            call(block)
            if r:
                times[key].append((time.perf_counter() - t0) / block)
    return times


def versus_columns(times: dict, preset: str, new: str, old: str) -> dict:
    """Two modes of ``preset`` timed by :func:`timed_blocks`: ``{new}_us`` and ``{old}_us``
    (medians, µs per step) and ``{old}_over_{new}``, the per-round median of old / new (> 1:
    ``new`` is faster)."""
    ours, theirs = times[(preset, new)], times[(preset, old)]
    return {f"{new}_us": round(1e6 * statistics.median(ours), 1),
            f"{old}_us": round(1e6 * statistics.median(theirs), 1),
            f"{old}_over_{new}": round(statistics.median(
                b / a for a, b in zip(ours, theirs, strict=True)), 3)}


def pair_list_kind(dyn) -> str:
    """What a ``StudentVerlet`` run's pair list ended as: "pruned" (every step), "margin",
    or "margin, untried" (never redrawn, so never timed against pruning)."""
    state = dyn._state
    if state.prune:
        return "pruned"
    return "margin" if state.trial is None or state.trial.chosen is not None else "margin, untried"


def on_threads(call, threads: int):
    """``call`` (an :func:`md_step_call`) run with torch on ``threads`` threads."""
    def run(steps: int = 1):
        torch.set_num_threads(threads)
        call(steps)

    run.dyn = call.dyn
    return run


def presets_head_to_head(mols, md_calcs: dict, rounds: int, block: int) -> list[dict]:
    """The compiled presets' MD steps on each molecule, in blocks: per round, each preset
    runs ``block`` steps in one ``run`` (after one untimed step) with ``StudentVerlet``
    (``md_step_ms``) and with ASE's ``VelocityVerlet`` (``ase_md_step_ms``), at 1 and at 2
    threads, each on its own compiled calculator, all in turn. A block keeps one model's
    weights in the caches, as a real MD run does (calls alternating one by one let
    ``original``'s 1.8 MB of weights evict ``tiny``'s 0.3 MB from the 2 MiB L2 before each
    call); alternating blocks share the machine's drift, thread counts included. The first
    steps of each block refill the caches, which a real run does once: ``tiny`` at 20
    atoms, 1 thread, took 288 / 257 / 247 µs per step in blocks of 40 / 200 / 400 (one
    process, session 23), and 258-261 µs alone in runs of 1 to 400 steps; hence blocks of
    400 by default.
    Rows per molecule and thread count: per round, ``original``'s ms per step over each
    preset's (``x_original_...``, and ``x_original_best_integrator_...`` with each preset on
    its faster integrator that round), medians over rounds; and a row with ``threads``
    "best": per round, each preset on its fastest thread count and integrator that round
    (``x_original_best_per_round_median``)."""
    from mlff_distiller import StudentCalculator

    thread_counts = (1, 2)
    calcs = {(p, ase, t): calc if (not ase and t == 1) else
             StudentCalculator(calc.model, compile=True)
             for p, calc in md_calcs.items() for ase in (False, True) for t in thread_counts}
    out = []
    for n, atoms in mols.items():
        steps = {key: on_threads(md_step_call(atoms, calc, ase_verlet=key[1]), key[2])
                 for key, calc in calcs.items()}
        per_step = timed_blocks(steps, rounds, block)
        fastest = {p: [min(r) for r in zip(*(per_step[(p, ase, t)] for ase in (False, True)
                                             for t in thread_counts), strict=True)]
                   for p in md_calcs}
        for threads in thread_counts:
            ours = {p: per_step[(p, False, threads)] for p in md_calcs}
            ase = {p: per_step[(p, True, threads)] for p in md_calcs}
            best = {p: [min(a, b) for a, b in zip(ours[p], ase[p], strict=True)] for p in ours}
            row = {"n_atoms": n, "threads": threads, "rounds": rounds, "block": block,
                   "md_step_ms": {p: 1e3 * statistics.median(t) for p, t in ours.items()},
                   "ase_md_step_ms": {p: 1e3 * statistics.median(t) for p, t in ase.items()},
                   "pair_list": {p: pair_list_kind(steps[(p, False, threads)].dyn)
                                 for p in md_calcs}}
            if "original" in ours:
                for name, times in (("", ours), ("ase_", ase), ("best_integrator_", best)):
                    row[f"x_original_{name}per_round_median"] = per_round_ratios(times)
            out.append(row)
            print("  " + json.dumps({k: v for k, v in row.items()
                                     if k not in ("rounds", "block")}), flush=True)
        row = {"n_atoms": n, "threads": "best", "rounds": rounds, "block": block,
               "best_ms": {p: 1e3 * statistics.median(t) for p, t in fastest.items()}}
        if "original" in fastest:
            row["x_original_best_per_round_median"] = per_round_ratios(fastest)
        out.append(row)
        print("  " + json.dumps({k: v for k, v in row.items() if k not in ("rounds", "block")}),
              flush=True)
    torch.set_num_threads(1)
    return out


def per_round_ratios(times: dict) -> dict:
    """{preset: median over rounds of ``original``'s time / the preset's} for every preset
    but ``original``; ``times`` {preset: [seconds per step, per round]}."""
    return {p: statistics.median(o / t for o, t in zip(times["original"], times[p], strict=True))
            for p in times if p != "original"}


def schnetpack(mols, repeats: int) -> dict:
    from mlff_distiller.models.presets import preset_config

    python = ROOT / ".venv-bench" / "bin" / "python"
    if not python.exists():
        return {"error": f"{python} missing; see the setup commands at the top of this script"}
    job = {"molecules": [{"numbers": a.numbers.tolist(), "positions": a.positions.tolist()}
                         for a in mols.values()],
           "configs": {p: {"hidden": preset_config(p).hidden,
                           "n_interactions": preset_config(p).n_interactions,
                           "n_rbf": preset_config(p).n_rbf, "cutoff": preset_config(p).cutoff,
                           "shared_filters": preset_config(p).shared_filters}
                       for p in PRESETS},
           "repeats": repeats, "threads": 1}
    done = subprocess.run([str(python), str(ROOT / "benchmarks" / "inference_schnetpack.py")],
                          input=json.dumps(job), capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def teachers(mols, repeats: int) -> list[dict]:
    from mlff_distiller.teachers import load_teacher

    out = []
    sevennet = load_teacher("sevennet").calculator()
    for n, atoms in mols.items():
        best = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            best[threads] = median_ms(rattled_calls(atoms, sevennet), max(3, repeats // 5), 1)
        threads = min(best, key=lambda k: best[k][0])
        out.append({"peer": "sevennet-0", "n_atoms": n, "median_ms": best[threads][0],
                    "cpu_ms": best[1][1], "threads": threads,
                    "by_threads_ms": {k: v[0] for k, v in best.items()}})
        print(f"  sevennet-0 {n:3d} atoms  {best}", flush=True)
    torch.set_num_threads(1)
    from tblite.ase import TBLite

    xtb = TBLite(method="GFN2-xTB", verbosity=0)
    wall, cpu = median_ms(rattled_calls(mols[9], xtb), repeats)
    out.append({"peer": "gfn2-xtb", "n_atoms": 9, "threads": 1, "median_ms": wall,
                "cpu_ms": cpu})
    return out


def batched(mols, repeats: int, paths: tuple[str, ...] = ("one_call",)) -> dict:
    """{path: rows}: throughput of the students on batches of one molecule, graphs
    prebuilt, through each of ``paths``: ``one_call`` (FastForceField, the whole batch in
    one call), ``chunked`` (``batched_energy_and_forces``: calls of at most CPU_CHUNK_PAIRS
    pairs), ``compiled`` (its ``compile=True``: the AOTInductor program, one structure per
    call; the build is not timed).

    The batch sizes and paths of one preset and molecule are timed in turn, one call each
    per round (``max(5, repeats // 5)`` rounds after one warm-up round), so a drift of the
    machine's speed over the minutes of a run lands on none of them; medians per size.
    """
    from mlff_distiller import keys
    from mlff_distiller.data.graph import atoms_to_graph, collate
    from mlff_distiller.md.fast import FastForceField, batched_energy_and_forces
    from mlff_distiller.models.painn import edge_pairs

    rounds = max(5, repeats // 5)
    out = {path: [] for path in paths}
    for preset in PRESETS:
        fast = FastForceField(student_model(preset))
        callers = {path: fast if path == "one_call" else
                   batched_energy_and_forces(fast, compile=path == "compiled")
                   for path in paths}
        for n, atoms in mols.items():
            single = atoms_to_graph(atoms, fast.cutoff)
            calls = {}
            for b in BATCHES:
                g = collate([single] * b)
                species = fast.species(g[keys.ATOMIC_NUMBERS])
                pairs, _ = edge_pairs(g[keys.EDGE_INDEX])
                args = (g[keys.POSITIONS], species, pairs, None, g[keys.BATCH], b)
                for path in paths:
                    calls[(path, b)] = lambda f=callers[path], a=args: f(*a)
            times = interleaved_ms(calls, rounds)
            for (path, b), (ms, cpu) in times.items():
                out[path].append({"preset": preset, "n_atoms": n, "batch": b, "ms": ms,
                                  "cpu_ms": cpu, "atoms_per_s": n * b / (ms / 1e3),
                                  "atoms_per_cpu_s": n * b / (cpu / 1e3)})
    return out


def interleaved_ms(calls: dict, rounds: int, warmup: int = 1) -> dict:
    """{name: (median wall ms, median thread-CPU ms)}: each call once per round, in turn,
    after ``warmup`` rounds."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            c0, t0 = time.thread_time(), time.perf_counter()
            call()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.thread_time() - c0)
    return {name: (1e3 * statistics.median(wall[name]), 1e3 * statistics.median(cpu[name]))
            for name in calls}


def head_to_head_xtb(atoms, compiled: dict, repeats: int) -> dict:
    """GFN2-xTB against the compiled students on one molecule, single points on the same
    rattled geometries, the calls alternating (1 thread): medians and, per round, the ratio
    xTB / student (its median is the head-to-head speed-up)."""
    from tblite.ase import TBLite

    rng = np.random.default_rng(1)
    start = atoms.positions.copy()
    calcs = {"gfn2-xtb": TBLite(method="GFN2-xTB", verbosity=0), **compiled}
    systems = {}
    for name, calc in calcs.items():
        systems[name] = atoms.copy()
        systems[name].calc = calc
    wall = {name: [] for name in calcs}
    for r in range(repeats + 2):
        positions = start + rng.normal(0, 1e-3, start.shape)
        for name, system in systems.items():
            t0 = time.perf_counter()
            system.positions = positions
            system.get_forces()
            if r >= 2:  # two warm-up rounds
                wall[name].append(time.perf_counter() - t0)
    out = {"n_atoms": len(atoms), "rounds": repeats,
           "median_ms": {name: 1e3 * statistics.median(t) for name, t in wall.items()}}
    out["x_xtb_per_round_median"] = {
        name: statistics.median(x / s for x, s in zip(wall["gfn2-xtb"], wall[name], strict=True))
        for name in compiled}
    return out


def batched_under(mols_json: str, repeats: int, preload: str | None,
                  tune: bool = False, paths: tuple[str, ...] = ("one_call",)) -> dict:
    """:func:`batched` in a fresh process (``LD_PRELOAD`` of ``preload``; glibc tuned by
    ``tune_allocator`` when ``tune``), compiled programs from this run's program cache."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if preload:
        env["LD_PRELOAD"] = preload
    command = [sys.executable, __file__, "--batched-worker", "--repeats", str(repeats),
               "--paths", ",".join(paths)]
    command += ["--tune-allocator"] if tune else []
    for preset, path in STUDENT_FILES.items():
        command += ["--student", f"{preset}={path}"]
    done = subprocess.run(command, input=mols_json,
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def batch_growth(rows: list[dict]) -> dict:
    """{"preset n_atoms": atoms/s at batch 64 / atoms/s at batch 8} (target: >= 1)."""
    by = {(r["preset"], r["n_atoms"], r["batch"]): r["atoms_per_s"] for r in rows}
    return {f"{p} {n}": by[(p, n, 64)] / by[(p, n, 8)] for p, n, b in by if b == 64}


def speedups(slow: list[dict], fast: list[dict]) -> dict:
    """{"preset n_atoms": {batch: atoms/s of ``fast`` / atoms/s of ``slow``}} (rows of
    :func:`batched` timed in the same rounds)."""
    by = {(r["preset"], r["n_atoms"], r["batch"]): r["atoms_per_s"] for r in slow}
    out: dict[str, dict[int, float]] = {}
    for r in fast:
        key = (r["preset"], r["n_atoms"], r["batch"])
        out.setdefault(f"{key[0]} {key[1]}", {})[key[2]] = r["atoms_per_s"] / by[key]
    return out


def ratios(result: dict, metric: str) -> list[dict]:
    """The issue's targets, one row per preset and size; ``metric`` "wall" or "cpu"
    (1-thread CPU). Each preset against schnetpack's PaiNN of its own sizes, SevenNet-0 per
    MD step (each at its best thread count), ``original`` (``x_original``: single points;
    ``x_original_md_step_1t`` and ``_best_threads``: compiled MD steps from the presets'
    head to head, wall only) and, at 9 atoms, GFN2-xTB; "best" is the faster of the fast
    and the compiled single point."""
    sfx = "_ms" if metric == "wall" else "_cpu_ms"
    peer_key = "median_ms" if metric == "wall" else "cpu_ms"
    stu = {(r["preset"], r["n_atoms"]): r for r in result["students"]}
    spk = {(r["config"], r["n_atoms"]): r[peer_key]
           for r in result["schnetpack"].get("results", [])}
    seven = {r["n_atoms"]: r[peer_key] for r in result["teachers"] if r["peer"] == "sevennet-0"}
    xtb = next(r[peer_key] for r in result["teachers"] if r["peer"] == "gfn2-xtb")
    inf, nan = float("inf"), float("nan")
    by_threads = {(r["n_atoms"], r["threads"]): r for r in result.get("presets_head_to_head", [])}

    def best(r: dict) -> float:
        return min(r["fast" + sfx], r.get("compiled" + sfx, inf))

    rows = []
    for preset in PRESETS:
        for n in MOLECULES:
            r = stu[(preset, n)]
            md = min(r["md_step" + sfx], r["ase_md_step" + sfx],
                     r.get("compiled_md_step" + sfx, inf),
                     r.get("compiled_ase_md_step" + sfx, inf),
                     r.get("compiled_md_step_2t_ms", inf) if metric == "wall" else inf)
            ref = spk.get((preset, n), nan)
            row = {"preset": preset, "n_atoms": n, "fast_ms": r["fast" + sfx],
                   "best_ms": best(r), "md_step_ms": md, "schnetpack_ms": ref,
                   "x_schnetpack_fast": ref / r["fast" + sfx], "x_schnetpack_best": ref / best(r),
                   "sevennet_ms": seven[n], "x_sevennet_md_step": seven[n] / md,
                   "x_original": best(stu[("original", n)]) / best(r)}
            if metric == "wall" and (n, 1) in by_threads and preset != "original":
                one = by_threads[(n, 1)]
                row["x_original_md_step_1t"] = one["x_original_per_round_median"][preset]
                row["x_original_ase_md_step_1t"] = one["x_original_ase_per_round_median"][preset]
                row["x_original_best_integrator_1t"] = one[
                    "x_original_best_integrator_per_round_median"][preset]
                row["x_original_md_step_best_threads"] = by_threads[(n, "best")][
                    "x_original_best_per_round_median"][preset]
            if n == 9:
                row["xtb_ms"] = xtb
                row["x_xtb_best"] = xtb / best(r)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/inference.json")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--block", type=int, default=400,
                        help="MD steps per preset per round in the presets' head to head")
    parser.add_argument("--compile", default=",".join(PRESETS),
                        help="presets to also time compiled (compile=True; '' for none)")
    parser.add_argument("--student", action="append", default=[], metavar="PRESET=PATH",
                        help="time this checkpoint as PRESET instead of the zoo student "
                             "(repeatable)")
    parser.add_argument("--batched-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tune-allocator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paths", default="one_call", help=argparse.SUPPRESS)
    args = parser.parse_args()
    use_student_files(parser, args.student)
    compile_presets = [p for p in args.compile.split(",") if p]
    unknown = sorted(set(compile_presets) - set(PRESETS))
    if unknown:
        parser.error(f"--compile {args.compile!r}: unknown preset(s) {unknown}; "
                     f"choose from {', '.join(PRESETS)} (comma-separated) or '' for none")
    torch.set_num_threads(1)
    from ase import Atoms

    from mlff_distiller.md.program_cache import CACHE_ENV

    # a fresh program cache: compile_s is a build, cached_load_s the load of that build
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="mlffd-bench-programs-")
    if args.batched_worker:
        if args.tune_allocator:
            from mlff_distiller.md.fast import tune_allocator

            assert tune_allocator()
        mols = {int(k): Atoms(numbers=v["numbers"], positions=v["positions"])
                for k, v in json.load(sys.stdin).items()}
        print(json.dumps(batched(mols, args.repeats, tuple(args.paths.split(",")))))
        return

    from mlff_distiller.fileio import write_json
    from mlff_distiller.structures.sources import embed_conformers

    mols = {n: embed_conformers(s, 1, seed=0)[0] for n, s in MOLECULES.items()}
    assert all(len(a) == n for n, a in mols.items()), {n: len(a) for n, a in mols.items()}
    mols_json = json.dumps({n: {"numbers": a.numbers.tolist(), "positions": a.positions.tolist()}
                            for n, a in mols.items()})
    result = {"benchmark": "inference", "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "load_average_start": os.getloadavg()}
    print("students", flush=True)
    result["students"], compiled, md_calcs = students(mols, args.repeats, compile_presets)
    write_json(args.out, result)  # partial results survive an interrupted run
    if md_calcs:
        print(f"presets head to head, MD steps in blocks of {args.block}", flush=True)
        result["presets_head_to_head"] = presets_head_to_head(
            mols, md_calcs, max(5, args.repeats // 3), args.block)
        write_json(args.out, result)
    if compiled:
        print("head to head with GFN2-xTB at 9 atoms", flush=True)
        result["head_to_head_xtb"] = head_to_head_xtb(mols[9], compiled, args.repeats)
        print(json.dumps(result["head_to_head_xtb"]), flush=True)
    print("schnetpack", flush=True)
    result["schnetpack"] = schnetpack(mols, args.repeats)
    print("teachers", flush=True)
    result["teachers"] = teachers(mols, args.repeats)
    write_json(args.out, result)
    print("batched", flush=True)
    paths = ("chunked", "compiled") if compile_presets else ("chunked",)
    product = batched_under(mols_json, args.repeats, None, tune=True, paths=paths)
    result["batched_chunked"] = product["chunked"]
    if "compiled" in product:
        result["batched_compiled"] = product["compiled"]
        result["batched_compiled_over_chunked"] = speedups(product["chunked"],
                                                           product["compiled"])
    write_json(args.out, result)
    result["batched_glibc"] = batched_under(mols_json, args.repeats, None)["one_call"]
    result["batched_glibc_tuned"] = batched_under(mols_json, args.repeats, None,
                                                  tune=True)["one_call"]
    write_json(args.out, result)
    if Path(TCMALLOC).exists():
        result["batched_tcmalloc"] = batched_under(mols_json, args.repeats,
                                                   TCMALLOC)["one_call"]
    result["batched_64_over_8"] = {
        key: batch_growth(result[key]) for key in
        ("batched_chunked", "batched_compiled", "batched_glibc", "batched_glibc_tuned",
         "batched_tcmalloc")
        if key in result}
    result["ratios_wall"] = ratios(result, "wall")
    result["ratios_cpu"] = ratios(result, "cpu")
    result["load_average_end"] = os.getloadavg()
    write_json(args.out, result)
    for metric in ("wall", "cpu"):
        print(metric)
        for row in result[f"ratios_{metric}"]:
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                              for k, v in row.items()}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
