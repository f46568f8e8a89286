"""Which compiled form of a student's energy + forces is fastest on a GPU, and which crash;
JSON out. Prepared for issue 7's GPU target (``original``, 50 atoms, batch 1, <= 0.5 ms).

One preset (``--preset``) on loratadine (50 atoms, as ``gpu_inference.py``), fixed inputs,
each variant in its own process (a segfault is recorded as the process's exit code, and the
others still run). The processes build at the same time, wait until every one has built
(or failed, or half of ``--timeout`` passed), then time one at a time (a lock file), so no
timing shares the machine with a compile:

  eager           ``FastForceField``
  eager_graph     ``FastForceField`` replayed from a CUDA graph (what the calculator runs)
  inductor        ``torch.compile(fast)``, static shapes
  inductor_graph  ``torch.compile(fast)`` captured in a CUDA graph of our own (no dynamo
                  guards on replay)
  autotune_graph  ``torch.compile(fast, mode="max-autotune-no-cudagraphs")`` (Triton matmul
                  templates, autotuned) captured in a CUDA graph of our own; on an H200
                  (torch 2.11) ``original``'s build had not finished after 200 s (one
                  matmul shape: 18 s for its 18 choices)
  reduce_overhead ``torch.compile(fast, mode="reduce-overhead")`` (Inductor's CUDA graphs)
  aoti            the AOTInductor program built and loaded as ``CompiledEnergyAndForces``
                  would (which refuses CUDA: such programs segfaulted at load, torch 2.11)

Per variant: ``build_s`` (first call), median / p10 / p90 ms of ``--repeats`` synchronised
calls, ``max_abs_dforces`` (eV/Å) against the eager model, or ``error`` / ``exit_code``.

Usage (on the GPU machine; see ``gpu_inference.py`` for carrying ase, vesin and rdkit):
  PYTHONPATH=/tmp/site:src python3 benchmarks/gpu_compile_paths.py --out $OUT/paths.json
  .venv/bin/python benchmarks/gpu_compile_paths.py --device cpu --variants eager  # smoke

Never asserts on time.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS = ("eager", "eager_graph", "inductor", "inductor_graph", "autotune_graph",
            "reduce_overhead", "aoti")
GRAPHED = ("eager_graph", "inductor_graph", "autotune_graph")


def build(variant: str, fast, args: tuple):
    """The call of ``variant`` on ``args`` (no arguments; returns (energy, forces))."""
    import torch
    from gpu_inference import cuda_graph_call

    if variant == "eager":
        return lambda: fast(*args)
    if variant == "eager_graph":
        return cuda_graph_call(fast, args)
    if variant == "inductor":
        compiled = torch.compile(fast, dynamic=False)
        return lambda: compiled(*args)
    if variant == "inductor_graph":
        return cuda_graph_call(torch.compile(fast, dynamic=False), args)
    if variant == "autotune_graph":
        return cuda_graph_call(
            torch.compile(fast, dynamic=False, mode="max-autotune-no-cudagraphs"), args)
    if variant == "reduce_overhead":
        compiled = torch.compile(fast, dynamic=False, mode="reduce-overhead")
        return lambda: compiled(*args)
    if variant == "aoti":
        return aoti_call(fast, args)
    raise ValueError(variant)


def aoti_call(fast, args: tuple):
    """Build and load the AOTInductor program as ``CompiledEnergyAndForces._build`` does
    (without its CPU-only check), for one molecule."""
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    from mlff_distiller.md.fast import CompiledEnergyAndForces, export_verlet_step

    positions, species, pairs = args[:3]
    program = export_verlet_step(fast, False, positions)
    configs = {"cpp.threads": 1} if positions.device.type == "cpu" else {}
    package = aoti_compile_and_package(program, package_path=os.path.join(
        tempfile.mkdtemp(prefix="mlffd-paths-"), "p.pt2"), inductor_configs=configs)
    run = aoti_load_package(package).loader.run
    # a single point: the program's velocity Verlet step with a time step of zero
    flat = CompiledEnergyAndForces(fast).single_point_inputs(positions.double(), species, pairs,
                                                             None)

    def call():
        forces, _, _, scalars = run(flat)
        return scalars[:1], forces.to(positions.dtype)

    return call


def wait_for_builds(lock_path: str, variant: str, n_variants: int, until: float) -> None:
    """Mark ``variant`` built, then wait until all ``n_variants`` are, or until the
    ``time.time()`` ``until`` (a crashed variant never is)."""
    Path(f"{lock_path}.{variant}.built").touch()
    deadline = time.monotonic() + max(0.0, until - time.time())
    while (len(list(Path(lock_path).parent.glob(f"{Path(lock_path).name}.*.built")))
           < n_variants and time.monotonic() < deadline):
        time.sleep(0.2)


def child(variant: str, preset: str, device_name: str, repeats: int, lock_path: str,
          n_variants: int, wait_until: float) -> dict:
    """Build, check and time one variant; the timing holds the lock file."""
    import inference as inf
    import torch
    from gpu_inference import MOLECULE, device_inputs, synchronized

    from mlff_distiller import keys
    from mlff_distiller.data.graph import atoms_to_graph, collate
    from mlff_distiller.md.fast import FastForceField
    from mlff_distiller.structures.sources import embed_conformers

    device = torch.device(device_name)
    if variant in GRAPHED + ("reduce_overhead",) and device.type != "cuda":
        return {"variant": variant, "error": "needs a CUDA device"}
    atoms = embed_conformers(MOLECULE[1], 1, seed=0)[0]
    model = inf.student_model(preset).to(device).eval()
    fast = FastForceField(model)
    graph = collate([atoms_to_graph(atoms, model.cutoff)])
    args = device_inputs(fast, graph, device)
    eager = model({k: v.to(device) for k, v in graph.items()})[keys.FORCES].detach()
    start = time.perf_counter()
    call = synchronized(build(variant, fast, args), device)
    out = call()
    row = {"variant": variant, "build_s": round(time.perf_counter() - start, 3),
           "max_abs_dforces": float((out[1] - eager).abs().max())}
    wait_for_builds(lock_path, variant, n_variants, wait_until)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process times at a time
        for _ in range(5):
            call()
        ms = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            ms.append(1e3 * (time.perf_counter() - t0))
    q = np.quantile(ms, [0.1, 0.9])
    row.update(median_ms=statistics.median(ms), p10_ms=float(q[0]), p90_ms=float(q[1]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/gpu_compile_paths.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="original", choices=("original", "tiny", "ultra-tiny"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=400.0,
                        help="seconds each variant's process may take, build included")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--lock", help=argparse.SUPPRESS)
    parser.add_argument("--n-variants", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--wait-until", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        try:
            row = child(args.child, args.preset, args.device, args.repeats, args.lock,
                        args.n_variants, args.wait_until)
        except Exception as exc:  # recorded, not fatal: the parent keeps the others
            row = {"variant": args.child, "error": f"{type(exc).__name__}: {exc}"[:500]}
        finally:  # a variant that failed or did not apply: the others need not wait for it
            Path(f"{args.lock}.{args.child}.built").touch()
        print(json.dumps(row), flush=True)
        return
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - set(VARIANTS):
        parser.error(f"--variants {args.variants!r}: choose from {', '.join(VARIANTS)}")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: expected an integer >= 1")
    import torch

    from mlff_distiller.devices import torch_device
    from mlff_distiller.errors import InputError
    from mlff_distiller.fileio import write_json

    try:
        device = torch_device(args.device, "--device")
    except InputError as exc:
        parser.error(f"{exc} (--device cpu: a smoke run)")
    lock = tempfile.NamedTemporaryFile(prefix="mlffd-paths-", suffix=".lock", delete=False).name
    procs = {v: subprocess.Popen(
        [sys.executable, __file__, "--child", v, "--lock", lock, "--preset", args.preset,
         "--device", str(device), "--repeats", str(args.repeats),
         "--n-variants", str(len(variants)),
         "--wait-until", str(time.time() + 0.5 * args.timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for v in variants}
    result = {"benchmark": "gpu_compile_paths", "torch": torch.__version__,
              "device": str(device), "preset": args.preset, "repeats": args.repeats,
              "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                              else "cpu"), "variants": []}
    deadline = time.monotonic() + args.timeout
    for variant, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        row = json.loads(lines[-1]) if lines else {
            "variant": variant, "exit_code": proc.returncode,
            "error": (stderr.strip().splitlines() or ["no output"])[-1][:500]}
        result["variants"].append(row)
        print(json.dumps(row), flush=True)
    for path in [Path(lock), *Path(lock).parent.glob(f"{Path(lock).name}.*.built")]:
        path.unlink(missing_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
