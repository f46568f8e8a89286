"""Latency / throughput of students (every export format) and of the teacher, in one run.

For each student x format x thread count x batch size: the neighbour list (``atoms_to_graph``)
and the model call are timed separately (energy + forces + stress for ``eager`` and the
exports; energy + forces for ``fast`` and ``compiled``, the path the ASE calculator and MD
run: ``md.fast``, structures in chunks of pairs, and the AOTInductor program one structure
per call, built once or loaded from the program cache); warm-up calls are
excluded and the median of ``repeats`` is reported. ``memory_mb`` is the rise of the
process's resident high-water mark during one call (Linux ``/proc``; 0 when freed memory is
reused; CUDA: allocator peak), ``process_peak_rss_mb`` the whole process's peak. Never
asserts on time: it measures and writes JSON + a plot.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlff_distiller.errors import InputError
from mlff_distiller.fileio import write_json

FORMATS = ("eager", "fast", "compiled", "torchscript", "onnx", "onnx-pinned", "aoti")
# how a user runs a student the way each format times it (model cards print it)
FORMAT_USAGE = {
    "eager": "the eager model on collated graphs (`load_student(path)(graph, "
             "compute_forces=True, compute_stress=True)`)",
    "fast": "`StudentCalculator(path)`, the ASE calculator's default path (`mlffd md`)",
    "compiled": "`StudentCalculator(path, compile=True)` (`mlffd md --compile`): an "
                "AOTInductor program, built once per student and machine (needs a C++ "
                "compiler), then loaded from the program cache",
    "torchscript": "the TorchScript export (`mlffd export STUDENT --format torchscript`, "
                   "then `load_export(file)`)",
    "onnx": "the ONNX export (`mlffd export STUDENT --format onnx`, then `load_export(file)`)",
    "onnx-pinned": "the ONNX export with the original scatter graph, one thread only",
    "aoti": "the AOTInductor export (`mlffd export STUDENT --format aoti`, then "
            "`load_export(file)`)",
}
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def benchmark(
    student_paths: Sequence[str | os.PathLike],
    teacher: str | None = None,
    formats: Sequence[str] = ("eager", "torchscript", "onnx", "aoti"),
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    threads: Sequence[int] = (1, 2),
    repeats: int = 10,
    out_dir: str | os.PathLike = "bench",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark students (and a teacher) on batches of a small molecule.

    Args:
        student_paths: student checkpoints (``.safetensors``).
        teacher: a teacher name for ``teachers.load_teacher`` (timed on the same molecule,
            one structure per call, for the speed-up ratio), or None.
        formats: any of ``eager``, ``fast`` (the calculator's frozen model, energy +
            forces), ``compiled`` (its ``compile=True`` program; the build time is reported
            under ``exports``), ``torchscript``, ``onnx`` (race-free graph, any threads),
            ``onnx-pinned`` (original scatter graph, one thread only), ``aoti``.
        batch_sizes: structures per call.
        threads: CPU thread counts (torch intra-op / onnxruntime intra-op).
        repeats: timed calls per configuration (median reported).
        out_dir: exports, ``benchmark.json`` and ``benchmark.png`` go here.

    Returns the benchmark dict (also written to ``out_dir/benchmark.json``); each student's
    fastest run is also written in the prototype's shape (``{model, device, benchmarks,
    summary}``) to ``out_dir/<student>.benchmark.json`` for its model card.
    """
    formats = [f.strip().lower() for f in formats]
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise InputError(f"unknown benchmark format(s) {bad}; choose from {list(FORMATS)}")
    if not student_paths:
        raise InputError("no student checkpoints given to benchmark")
    if any(int(b) < 1 for b in batch_sizes) or any(int(t) < 1 for t in threads):
        raise InputError(f"batch sizes {batch_sizes} and threads {threads} must be >= 1")
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from mlff_distiller.export.api import resolve_student
    from mlff_distiller.export.quantize_report import md_molecule

    students = [(Path(p), resolve_student(p)) for p in student_paths]
    elements = sorted(set.intersection(*(set(s.elements) for _, s in students)))
    molecule = md_molecule(elements)
    result: dict[str, Any] = {
        "device": _device_name(),
        "torch": torch.__version__,
        "structure": molecule.get_chemical_formula(),
        "atoms_per_structure": len(molecule),
        "repeats": repeats,
        "results": [],
        "exports": {},
    }
    saved_threads = torch.get_num_threads()
    try:
        for path, student in students:
            name = path.name.removesuffix(".safetensors")
            for fmt in formats:
                say(f"{name}: preparing {fmt}")
                runners, export_info = _prepare(student, fmt, out / "exports" / name,
                                                molecule)
                if export_info:
                    result["exports"][f"{name}/{fmt}"] = export_info
                for n_threads in threads:
                    if fmt == "onnx-pinned" and n_threads != 1:
                        continue
                    torch.set_num_threads(int(n_threads))
                    run = runners(int(n_threads))
                    entries = []
                    for b in batch_sizes:
                        say(f"{name} {fmt} threads={n_threads} batch={b}")
                        entries.append(_measure(run, molecule, student, int(b), repeats))
                    result["results"].append(
                        _shaped(name, fmt, n_threads, entries, _model_mb(student))
                    )
        if teacher:
            say(f"teacher {teacher}")
            result["teacher"] = _teacher(teacher, molecule, repeats, threads)
    finally:
        torch.set_num_threads(saved_threads)
    _add_speedups(result)
    write_json(out / "benchmark.json", result)
    result["per_model"] = {}
    for path, _ in students:
        name = path.name.removesuffix(".safetensors")
        best = max((r for r in result["results"] if r["model"] == name),
                   key=lambda r: r["summary"]["peak_throughput"])
        shaped = dict(best, device=f"{result['device']} ({best['format']}, "
                      f"{best['threads']} threads)", structure=result["structure"])
        built = result["exports"].get(f"{name}/{best['format']}", {})
        if "compile_seconds" in built:  # the compiled program's one-off build (or load)
            shaped["compile_seconds"] = built["compile_seconds"]
            shaped["loaded_from_cache"] = built["loaded_from_cache"]
        result["per_model"][name] = str(write_json(out / f"{name}.benchmark.json", shaped))
    from mlff_distiller.bench.plot import plot_benchmark

    plot_benchmark(result, out / "benchmark.png")
    result["json"] = str(out / "benchmark.json")
    result["plot"] = str(out / "benchmark.png")
    return result


def _prepare(student, fmt: str, folder: Path, molecule):
    """-> (threads -> predict(graph), export info or None)."""
    from mlff_distiller.export.api import SUFFIXES, export_student, load_export

    if fmt == "eager":
        def eager(n_threads: int):
            return lambda graph: student(graph, compute_forces=True, compute_stress=True)

        return eager, None
    if fmt in ("fast", "compiled"):
        return _fast_path(student, fmt == "compiled", molecule)
    base = {"onnx-pinned": "onnx"}.get(fmt, fmt)
    path = folder / f"student{'-pinned' if fmt == 'onnx-pinned' else ''}{SUFFIXES[base]}"
    if fmt == "onnx-pinned":
        from mlff_distiller.export.core import export_metadata
        from mlff_distiller.export.onnx import save_onnx

        save_onnx(student, path, export_metadata(student, "onnx"), race_free=False)
        info = {"path": str(path), "file_size_bytes": path.stat().st_size}
    else:
        info = export_student(student, base, path)
        info = {k: info[k] for k in ("path", "file_size_bytes", "export_seconds", "parity")}

    def loaded(n_threads: int):
        return load_export(path, fmt=base, threads=n_threads).predict

    return loaded, info


def _fast_path(student, compiled: bool, molecule):
    """The calculator's path on collated graphs: ``FastForceField`` in chunks of
    ``CPU_CHUNK_PAIRS`` pairs (one call on a GPU), or the compiled program one structure
    per call (built here, on ``molecule``, so the build is not timed as a call)."""
    from mlff_distiller import keys
    from mlff_distiller.data.graph import atoms_to_graph
    from mlff_distiller.md.fast import (
        FastForceField,
        batched_energy_and_forces,
        fast_arguments,
    )

    fast = FastForceField(student)
    weight = next(student.parameters())
    call = batched_energy_and_forces(fast, compile=compiled)
    program = call.fn

    def predict(graph):
        energy, forces = call(*fast_arguments(fast, graph))
        return {keys.ENERGY: energy, keys.FORCES: forces}

    info = None
    if compiled:
        predict(atoms_to_graph(molecule, student.cutoff, dtype=weight.dtype))
        info = {"compile_seconds": program.compile_s,
                "loaded_from_cache": program.cache_hits > 0}
    return (lambda n_threads: predict), info


def _measure(run, molecule, student, batch: int, repeats: int) -> dict[str, Any]:
    from mlff_distiller.data.graph import atoms_to_graph

    rng = np.random.default_rng(batch)
    structures = []
    for _ in range(batch):
        atoms = molecule.copy()
        atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
        structures.append(atoms)
    nl_times, times = [], []
    for k in range(repeats + 2):
        start = time.perf_counter()
        graph = atoms_to_graph(structures, student.cutoff)
        nl = time.perf_counter() - start
        _sync()
        start = time.perf_counter()
        out = run(graph)
        _sync()
        elapsed = time.perf_counter() - start
        if k >= 2:  # warm-up excluded
            nl_times.append(nl)
            times.append(elapsed)
    del out
    memory = _peak_memory_mb(lambda: run(graph))
    latency = statistics.median(times)
    n_atoms = int(graph["positions"].shape[0])
    return {
        "batch_size": batch,
        "n_atoms": n_atoms,
        "latency_ms": latency * 1e3,
        "latency_min_ms": min(times) * 1e3,
        "neighbor_list_ms": statistics.median(nl_times) * 1e3,
        "throughput_samples_per_sec": batch / latency,
        "throughput_atoms_per_sec": n_atoms / latency,
        "end_to_end_samples_per_sec": batch / (latency + statistics.median(nl_times)),
        "memory_mb": memory,
        "process_peak_rss_mb": _process_peak_mb(),
    }


def _shaped(name, fmt, n_threads, entries, model_mb) -> dict[str, Any]:
    best = max(entries, key=lambda e: e["throughput_samples_per_sec"])
    return {
        "model": name,
        "format": fmt,
        "device": "cpu",
        "threads": int(n_threads),
        "benchmarks": entries,
        "summary": {
            "peak_throughput": best["throughput_samples_per_sec"],
            "optimal_batch_size": best["batch_size"],
            "memory_per_model_mb": model_mb,
            "latency_batch1_ms": entries[0]["latency_ms"],
        },
    }


def _teacher(name: str, molecule, repeats: int, threads) -> dict[str, Any]:
    try:
        from mlff_distiller.teachers import load_teacher

        calc = load_teacher(name).calculator()
    except Exception as exc:  # any failure to build the teacher is reported, not fatal
        return {"name": name, "available": False, "reason": f"{type(exc).__name__}: {exc}"}
    per_threads = {}
    for n_threads in threads:
        torch.set_num_threads(int(n_threads))
        times = []
        for k in range(repeats + 2):
            atoms = molecule.copy()
            atoms.positions += np.random.default_rng(k).normal(scale=0.02, size=(len(atoms), 3))
            atoms.calc = calc
            start = time.perf_counter()
            atoms.get_potential_energy()
            atoms.get_forces()
            if k >= 2:
                times.append(time.perf_counter() - start)
        latency = statistics.median(times)
        per_threads[str(n_threads)] = {
            "latency_ms": latency * 1e3, "throughput_samples_per_sec": 1.0 / latency
        }
    return {"name": name, "available": True, "per_threads": per_threads,
            "note": "one structure per call through its ASE calculator (neighbour list included)"}


def _add_speedups(result: dict[str, Any]) -> None:
    teacher = result.get("teacher") or {}
    if not teacher.get("available"):
        return
    for run in result["results"]:
        ref = teacher["per_threads"].get(str(run["threads"]))
        if ref is None:
            continue
        for entry in run["benchmarks"]:
            entry["speedup_vs_teacher"] = (
                entry["end_to_end_samples_per_sec"] / ref["throughput_samples_per_sec"]
            )
        run["summary"]["teacher_speedup"] = max(
            e["speedup_vs_teacher"] for e in run["benchmarks"]
        )


def _model_mb(student) -> float:
    tensors = [*student.parameters(), *student.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def _peak_memory_mb(call) -> float | None:
    """Rise of the resident high-water mark during ``call()`` (MiB); None where unsupported."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        before = _status_kb("VmRSS")
        call()
        return max(_status_kb("VmHWM") - before, 0) / 1024
    except OSError:
        return None


def _process_peak_mb() -> float | None:
    try:
        return _status_kb("VmHWM") / 1024
    except OSError:
        return None


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name()}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


__all__ = ["DEFAULT_BATCH_SIZES", "FORMATS", "FORMAT_USAGE", "benchmark"]
