"""Student inference on a CUDA GPU: batch-1 latency and throughput per batch size; JSON out.

Issue 7's GPU targets: batch-1 energy + forces of ``original`` on a 50-atom molecule in at
most 0.5 ms, and throughput (atoms/s) for batches of 1-256 structures. Per preset (zoo
students, or ``--student PRESET=PATH`` as in ``inference.py``), on loratadine (50 atoms,
an RDKit/MMFF conformer), medians of ``--repeats`` calls, wall time with the device
synchronised before and after each call, warm-up excluded:

  latency, batch 1:
    calculator       ``StudentCalculator(device=...)`` single point on a new geometry each
                     call (neighbour list on the CPU every call, inputs copied to the device;
                     on CUDA the calculator replays a CUDA graph, ``md.cuda_graphs``)
    calculator_md    one ``StudentVerlet`` step (the MD runner's NVE integrator: ASE's step
                     without its bookkeeping, pair list reused) through that calculator
    fast             ``FastForceField`` on inputs already on the device
    compiled         what ``compile=True`` runs, on the same inputs: the AOTInductor program
                     on a CPU, ``torch.compile``'s kernels replayed from a CUDA graph
                     (``GraphedEnergyAndForces(compile=True)``) on CUDA (``setup_s``: the
                     first two calls: the build or load from the program cache, or on
                     CUDA an eager call, then the compile and capture)
    compiled_calculator  ``StudentCalculator(compile=True)`` single points, as ``calculator``
    compiled_md      one ``StudentVerlet`` step through ``StudentCalculator(compile=True)``
    compiled_ase_md  one step of ASE's ``VelocityVerlet`` through that calculator
    cuda_graph       (CUDA only) ``FastForceField`` captured once in a CUDA graph and
                     replayed on the same inputs (what a fixed-size MD loop could use)
  throughput: ``batch`` rattled copies of the molecule in one collated graph through the
    product's batched path (``ChunkedEnergyAndForces`` with ``chunk_pairs_for(device)``:
    one call on a GPU), the batch sizes timed in turn each round.

Every variant given fixed inputs is checked against the eager model on the same inputs
(``max_abs_dforces``, eV/Å), so a fast result is also a right one. A variant that fails (a
missing compiler, a capture error) is recorded with its error and the others still run.

Usage:
  .venv/bin/python benchmarks/gpu_inference.py --out runs/bench/gpu_inference.json
  .venv/bin/python benchmarks/gpu_inference.py --device cpu --presets ultra-tiny \
      --batches 1,2 --repeats 3 \
      --skip compiled,compiled_calculator,compiled_md,compiled_ase_md  # no GPU

On a lent GPU machine (the ``device`` tool): its python3 (3.12) has a CUDA torch but not
ase, rdkit or vesin, so carry them as wheels and run from the source tree. Here, once:

  echo /.whl/ >> .git/info/exclude
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
      -d .whl ase==3.29.0 vesin==0.6.2 rdkit==2026.9.1

then ``run`` with ``carry: [".whl"]``:

  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
  PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 python3 benchmarks/gpu_inference.py \
      --out $OUT/gpu_inference.json

Never asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MOLECULE = ("loratadine", "CCOC(=O)N1CCC(=C2c3ccc(Cl)cc3CCc3cccnc23)CC1")  # C22H23ClN2O2
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_VARIANTS = ("calculator", "calculator_md", "fast", "compiled", "compiled_calculator",
                    "compiled_md", "compiled_ase_md", "cuda_graph")


def synchronized(call, device: torch.device):
    """``call`` followed by a device synchronisation (CUDA work is asynchronous)."""
    if device.type != "cuda":
        return call

    def run():
        out = call()
        torch.cuda.synchronize(device)
        return out

    return run


def timed_ms(calls: dict, rounds: int, warmup: int = 3) -> dict[str, dict]:
    """{name: {median_ms, p10_ms, p90_ms}} of each (synchronised) call, in turn per round."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(1e3 * (time.perf_counter() - t0))
    out = {}
    for name, ms in times.items():
        q = np.quantile(ms, [0.1, 0.9])
        out[name] = {"median_ms": statistics.median(ms), "p10_ms": float(q[0]),
                     "p90_ms": float(q[1])}
    return out


def device_inputs(fast, graph: dict, device: torch.device) -> tuple:
    """FastForceField arguments for a collated graph, on ``device``."""
    from mlff_distiller.md.fast import fast_arguments

    return fast_arguments(fast, {k: v.to(device) for k, v in graph.items()})


def cuda_graph_call(fast, args: tuple):
    """``fast(*args)`` captured in a CUDA graph on static copies of ``args``; the returned
    call replays it and gives (energy, forces) in the graph's static output tensors."""
    from mlff_distiller.md.cuda_graphs import capture_graph

    static = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
    graph, out = capture_graph(fast, static)

    def replay():
        graph.replay()
        return out

    # the graph reads its inputs from ``static``'s memory: freed, the allocator would hand it
    # to other tensors and a replay would gather with whatever they hold
    replay.static_inputs = static
    return replay


def compiled_call(program, args: tuple):
    """``program(*args)`` as a call without arguments."""
    return lambda: program(*args)


def latency(preset: str, atoms, device: torch.device, repeats: int, skip: set) -> dict:
    """Batch-1 latency of each variant for one preset; see the module docstring."""
    import inference as inf

    from mlff_distiller import StudentCalculator, keys
    from mlff_distiller.data.graph import atoms_to_graph, collate
    from mlff_distiller.md.cuda_graphs import GraphedEnergyAndForces
    from mlff_distiller.md.fast import CompiledEnergyAndForces, FastForceField

    model = inf.student_model(preset).to(device).eval()
    fast = FastForceField(model)
    graph = collate([atoms_to_graph(atoms, model.cutoff, dtype=next(model.parameters()).dtype)])
    args = device_inputs(fast, graph, device)
    eager = model({k: v.to(device) for k, v in graph.items()})[keys.FORCES].detach()

    builders = {
        "calculator": lambda: inf.rattled_calls(atoms, StudentCalculator(model, device=device)),
        "calculator_md": lambda: inf.md_step_call(atoms, StudentCalculator(model, device=device)),
        "fast": lambda: (lambda: fast(*args)),
        "compiled": lambda: compiled_call(
            GraphedEnergyAndForces(fast, compile=True) if device.type == "cuda"
            else CompiledEnergyAndForces(fast), args),
        "compiled_calculator": lambda: inf.rattled_calls(
            atoms, StudentCalculator(model, device=device, compile=True)),
        "compiled_md": lambda: inf.md_step_call(
            atoms, StudentCalculator(model, device=device, compile=True)),
        "compiled_ase_md": lambda: inf.md_step_call(
            atoms, StudentCalculator(model, device=device, compile=True), ase_verlet=True),
        "cuda_graph": lambda: cuda_graph_call(fast, args),
    }
    row: dict = {"preset": preset, "n_atoms": len(atoms), "variants": {}}
    calls = {}
    for name in LATENCY_VARIANTS:
        if name in skip or (name == "cuda_graph" and device.type != "cuda"):
            continue
        try:
            t0 = time.perf_counter()
            call = builders[name]()
            out = call()  # builds or loads a compiled program; a graph runs eagerly
            out = call()  # a graph captures (compiles with compile=True)
            entry = {"setup_s": round(time.perf_counter() - t0, 3)}
            if name in ("fast", "compiled", "cuda_graph"):  # fixed inputs: check the result
                entry["max_abs_dforces"] = float((out[1] - eager).abs().max())
            row["variants"][name] = entry
            calls[name] = synchronized(call, device)
        except Exception as exc:  # recorded, not fatal: the other variants still run
            row["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    for name, stats in timed_ms(calls, repeats).items():
        row["variants"][name].update(stats)
    return row


def throughput(preset: str, atoms, device: torch.device, batches: list[int],
               repeats: int) -> list[dict]:
    """atoms/s of the batched path for each batch size (rattled copies of ``atoms``)."""
    import inference as inf

    from mlff_distiller.data.graph import atoms_to_graph, collate
    from mlff_distiller.md.fast import ChunkedEnergyAndForces, FastForceField, chunk_pairs_for

    model = inf.student_model(preset).to(device).eval()
    fast = FastForceField(model)
    batched = ChunkedEnergyAndForces(fast, chunk_pairs_for(device))
    dtype = next(model.parameters()).dtype
    rng = np.random.default_rng(0)
    copies = []
    for _ in range(max(batches)):
        copy = atoms.copy()
        copy.positions += rng.normal(0.0, 0.02, copy.positions.shape)
        copies.append(atoms_to_graph(copy, model.cutoff, dtype=dtype))
    calls = {}
    for b in batches:
        args = device_inputs(fast, collate(copies[:b]), device)
        calls[b] = synchronized(lambda a=args: batched(*a), device)
    rows = []
    for b, stats in timed_ms(calls, max(5, repeats // 4)).items():
        rows.append({"preset": preset, "n_atoms": len(atoms), "batch": b, **stats,
                     "atoms_per_s": b * len(atoms) / (stats["median_ms"] / 1e3)})
    return rows


def main() -> None:
    import inference as inf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/gpu_inference.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--skip", default="", help=f"latency variants to leave out, of "
                        f"{', '.join(LATENCY_VARIANTS)}")
    inf.add_student_arguments(parser)
    args = parser.parse_args()
    presets = inf.chosen_presets(parser, args)
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(LATENCY_VARIANTS):
        parser.error(f"--skip: unknown {sorted(skip - set(LATENCY_VARIANTS))}; choose from "
                     f"{', '.join(LATENCY_VARIANTS)}")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches {args.batches!r}: expected comma-separated integers")
    if not batches or min(batches) < 1:
        parser.error(f"--batches {args.batches!r}: expected batch sizes >= 1")
    from mlff_distiller.devices import torch_device
    from mlff_distiller.errors import InputError

    try:
        device = torch_device(args.device, "--device")
    except InputError as exc:
        parser.error(f"{exc} (--device cpu: a smoke run)")

    from mlff_distiller.fileio import write_json
    from mlff_distiller.structures.sources import embed_conformers

    atoms = embed_conformers(MOLECULE[1], 1, seed=0)[0]
    result = {
        "benchmark": "gpu_inference", "torch": torch.__version__, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "molecule": MOLECULE[0], "n_atoms": len(atoms),
        "repeats": args.repeats, "students": dict(inf.STUDENT_FILES),
        "latency": [], "throughput": [],
    }
    for preset in presets:  # the JSON is rewritten after each preset: a cut-off run keeps them
        row = latency(preset, atoms, device, args.repeats, skip)
        result["latency"].append(row)
        print({name: round(v.get("median_ms", float("nan")), 3)
               for name, v in row["variants"].items()}, preset, "ms", flush=True)
        try:
            rows = throughput(preset, atoms, device, batches, args.repeats)
        except Exception as exc:  # recorded, not fatal: the other presets still run
            rows = [{"preset": preset, "error": f"{type(exc).__name__}: {exc}"[:500]}]
        result["throughput"].extend(rows)
        print(preset, {r["batch"]: round(r["atoms_per_s"]) for r in rows if "batch" in r},
              "atoms/s", rows[0].get("error", ""), flush=True)
        write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
