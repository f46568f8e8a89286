"""Deployment: `mlffd export` (TorchScript, ONNX, AOTI, metatomic), `mlffd quantize`,
`mlffd bench` (latency / throughput)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlff_distiller.cli._common import console, floats


def export_cmd(
    student: str = typer.Argument(..., help="Student checkpoint (.safetensors)."),
    fmt: str = typer.Option("torchscript", "--format",
                            help="torchscript | onnx | aoti | metatomic."),
    out: str = typer.Option(None, help="Output file [default: beside the checkpoint]."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Export a student (energy, forces, stress) and check it against the eager model."""
    from mlff_distiller.export.api import SUFFIXES, check_format, export_student

    fmt = check_format(fmt)
    out = out or str(Path(student).with_suffix("")) + SUFFIXES[fmt]
    result = export_student(student, fmt, out)
    if as_json:
        console.print_json(json.dumps(result, default=str))
    else:
        parity = result["parity"]
        for name, case in parity["cases"].items():
            console.print(f"  {name:12s} atoms={case['n_atoms']:<4d} "
                          f"max|dE|={case['max_abs_energy_error_ev']:.2e} eV  "
                          f"max|dF|={case['max_abs_force_error_ev_per_a']:.2e} eV/A  "
                          f"max|dS|={case['max_abs_stress_error_ev_per_a3']:.2e} eV/A^3")
        console.print(f"{fmt} -> {result['path']} ({result['file_size_bytes']:,} bytes, "
                      f"{result['export_seconds']:.1f} s); parity "
                      f"{'PASSED' if parity['passed'] else 'FAILED'}; report {result['report']}")
    if not result["parity"]["passed"]:
        raise typer.Exit(1)


def quantize(
    student: str = typer.Argument(..., help="Float32 student checkpoint (.safetensors)."),
    mode: str = typer.Option(..., help="fp16 | bf16 | int8-weight | int8-onnx."),
    out: str = typer.Option(None, help="Output file [default: beside the checkpoint]."),
    dataset: str = typer.Option(None, help="Labelled .h5 for accuracy vs the teacher."),
    md_steps: int = typer.Option(200, help="NVE steps (0.5 fs) for the drift test."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Quantize a student; report size, speed, force accuracy, NVE drift, MD fitness."""
    from mlff_distiller.export.quantize_report import quantize_student

    r = quantize_student(student, mode, out_path=out, dataset=dataset, md_steps=md_steps)
    if as_json:
        console.print_json(json.dumps(r, default=str))
        return
    v, sp = r["vs_float32"], r["speed"]
    console.print(f"{r['mode']} -> {r['path']}: size x{r['size_ratio']:.2f} of float32, "
                  f"speed-up x{sp['speedup']:.2f} ({sp['threads']} threads), force R2 "
                  f"{v['force_r2']:.5f} / MAE {v['force_mae_ev_per_a']:.2e} eV/A vs float32")
    if "vs_teacher" in r:
        console.print(f"  vs teacher: {json.dumps(r['vs_teacher'])}")
    nve = {k: f"{d['drift_eV_per_atom_per_ps']:.2e}" for k, d in r["nve"].items()}
    console.print(f"  NVE drift eV/atom/ps on {r['md_molecule']}: {nve}")
    if r["fit_for_md"]:
        console.print("  [green]fit for MD[/]")
    else:
        console.print("  [bold red]UNFIT FOR MD:[/] " + "; ".join(r["unfit_reasons"]))


def bench(
    students: Annotated[list[str], typer.Argument(help="Student checkpoints.")],
    teacher: str = typer.Option(None, help="Teacher name timed in the same run (sevennet...)."),
    formats: str = typer.Option(
        "eager,fast,compiled,torchscript,onnx,aoti",
        help="eager, fast and compiled (the ASE calculator's path, energy + forces), "
             "torchscript, onnx, onnx-pinned, aoti"),
    batch_sizes: str = typer.Option("1,2,4,8,16,32,64", help="Structures per call."),
    threads: str = typer.Option("1,2", help="CPU thread counts."),
    repeats: int = typer.Option(10, help="Timed calls per configuration (median)."),
    out: str = typer.Option("bench", help="Output folder (JSON, plot, exports)."),
) -> None:
    """Latency / throughput per format, batch size and threads; teacher speed-up."""
    from mlff_distiller.bench.runner import benchmark

    ints = [[int(x) for x in floats(text, name)] for text, name in
            ((batch_sizes, "batch-sizes"), (threads, "threads"))]
    with console.status("benchmarking") as status:
        r = benchmark(students, teacher=teacher, formats=formats.split(","),
                      batch_sizes=ints[0], threads=ints[1], repeats=repeats, out_dir=out,
                      progress=lambda msg: status.update(msg))
    table = Table(title=f"{r['structure']} on {r['device']}")
    for col in ("model", "format", "threads", "batch", "ms/call", "structures/s", "NL ms",
                "x teacher"):
        table.add_column(col)
    for run in r["results"]:
        for e in run["benchmarks"]:
            table.add_row(run["model"], run["format"], str(run["threads"]), str(e["batch_size"]),
                          f"{e['latency_ms']:.2f}", f"{e['throughput_samples_per_sec']:.0f}",
                          f"{e['neighbor_list_ms']:.2f}",
                          f"{e['speedup_vs_teacher']:.1f}" if "speedup_vs_teacher" in e else "-")
    console.print(table)
    if r.get("teacher") and not r["teacher"].get("available"):
        console.print(f"teacher not available: {r['teacher']['reason']}")
    console.print(f"JSON {r['json']}  plot {r['plot']}")
