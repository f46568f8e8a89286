"""Proving a student: `mlffd evaluate` (against the teacher labels), `mlffd md` (MD
validation), `mlffd card` (model card, or the selection guide across students)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mlff_distiller.cli._common import console
from mlff_distiller.errors import InputError


def evaluate(
    student: str = typer.Argument(..., help="Student checkpoint (.safetensors)."),
    dataset: str = typer.Argument(..., help="Labeled dataset (.h5)."),
    split: str = typer.Option("test", help="train, val, test or all."),
    out: str = typer.Option(None, help="Output folder [default: <student>_eval beside it]."),
    batch_size: int = typer.Option(16, help="Structures per forward pass."),
    min_force: float = typer.Option(0.1, help="Teacher |F| (eV/Å) below which atoms are "
                                              "left out of angular errors."),
    device: str = typer.Option("cpu", help="Torch device."),
    as_json: bool = typer.Option(False, "--json", help="Print the full JSON result."),
) -> None:
    """Force/energy analysis of a student against the teacher labels: JSON + 6-panel PNG."""
    from mlff_distiller.evaluation.evaluate import evaluate_student

    res = evaluate_student(student, dataset, split=split, out_dir=out, batch_size=batch_size,
                           min_force=min_force, device=device)
    if as_json:
        console.print_json(json.dumps(res))
        return
    f, e = res["forces"], res["energy"]
    table = Table(title=f"{res['model']['name']} on {res['dataset']['name']} "
                        f"[{res['dataset']['split']}]")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value, unit in (
            ("force MAE", f["mae"], "eV/Å"), ("force RMSE", f["rmse"], "eV/Å"),
            ("force R²", f["r2"], ""), ("error norm p95", f["error_norm_percentiles"]["p95"],
                                        "eV/Å"),
            ("mean angular error", f["angular_error_mean_deg"], "deg"),
            ("energy MAE / atom", None if e["mae_per_atom"] is None
             else 1000 * e["mae_per_atom"], "meV"),
            ("energy MAE / atom, molecule offsets removed",
             None if res["relative_energy"]["mae_per_atom"] is None
             else 1000 * res["relative_energy"]["mae_per_atom"], "meV"),
            ("conformer Spearman", res["conformer_ranking"]["spearman_mean"], "")):
        table.add_row(name, "n/a" if value is None else f"{value:.4g} {unit}")
    console.print(table)
    if res["dataset"]["n_skipped"]:
        console.print(f"[yellow]skipped {res['dataset']['n_skipped']} structures with elements "
                      f"{res['dataset']['skipped_elements']} the student does not know[/]")
    console.print(f"json: {res['files']['json']}  figure: {res['files']['figure']}")


def md(
    student: Annotated[str, typer.Argument(help="Student checkpoint (.safetensors).")],
    molecules: Annotated[list[str], typer.Option(
        "--molecules", "-m", help="SMILES or structure file; repeat, or give several "
                                  "separated by spaces.")],
    teacher: str = typer.Option(None, help="Teacher spec (sevennet, xtb, ...) for the "
                                           "optimisation and distribution comparison."),
    temperature: float = typer.Option(300.0, help="Temperature (K)."),
    timestep: float = typer.Option(0.5, help="Time step (fs)."),
    nve_steps: int = typer.Option(2000, help="NVE steps per molecule."),
    nvt_steps: int = typer.Option(2000, help="NVT (Langevin) steps per molecule."),
    optimizer: str = typer.Option("FIRE", help="FIRE or BFGS."),
    fmax: float = typer.Option(0.05, help="Optimisation convergence (eV/Å)."),
    conformers: int = typer.Option(3, help="Conformers embedded per SMILES."),
    seed: int = typer.Option(0, help="Seed of velocities, thermostat and embedding."),
    out: str = typer.Option(None, help="Output folder [default: <student>_md beside it]."),
    device: str = typer.Option("cpu", help="Torch device of the student."),
    compile: bool = typer.Option(False, "--compile", help="Compile the student's energy + "
                                 "forces (tens of seconds once; CPU: AOTInductor, needs a C++ "
                                 "compiler; CUDA: torch.compile in a CUDA graph): pays for "
                                 "long runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the full JSON result."),
) -> None:
    """MD validation: NVE drift, NVT stability, optimisation and distributions vs teacher."""
    from mlff_distiller.md.runs import MDConfig
    from mlff_distiller.md.validate import validate_md

    config = MDConfig(temperature_K=temperature, timestep_fs=timestep, nve_steps=nve_steps,
                      nvt_steps=nvt_steps, optimizer=optimizer, fmax=fmax,
                      conformers=conformers, seed=seed)
    entries = [part for value in molecules for part in value.split()]
    res = validate_md(student, entries, teacher=teacher, config=config, out_dir=out,
                      device=device, compile=compile)
    if as_json:
        console.print_json(json.dumps(res))
        return
    table = Table(title=f"MD validation of {res['model']['name']} at {temperature:g} K")
    for col in ("molecule", "NVE drift %/100 steps", "NVT", "bond overlap"):
        table.add_column(col)
    for m in res["molecules"]:
        drift = m["nve"].get("drift_percent_per_100_steps")
        nvt = "stable" if m["nvt"]["stable"] else (
            f"UNSTABLE at step {m['nvt']['failure']['step']}: {m['nvt']['failure']['reason']}")
        overlap = (m.get("distributions") or {}).get("bonds_overlap")
        table.add_row(m["name"], "failed" if drift is None else f"{drift:.4f}", nvt,
                      "-" if overlap is None else f"{overlap:.3f}")
    console.print(table)
    s = res["summary"]
    verdict = "passes" if s["nve_passes_drift_bar"] else "fails"
    console.print(f"NVE drift bar (< {s['drift_bar_percent']:g} %/100 steps): {verdict}; "
                  f"NVT stable: {s['nvt_stable_fraction']:.0%}")
    if s.get("optimisation_rmsd_mean_A") is not None:
        console.print(f"optimised geometry RMSD vs teacher: mean "
                      f"{s['optimisation_rmsd_mean_A']:.4f} Å; conformer order preserved: "
                      f"{s.get('optimisation_conformer_order_preserved_fraction')}")
    if res.get("student_compile_s") is not None:
        console.print(f"student compiled in {res['student_compile_s']:.1f} s")
    console.print(f"json: {res['files']['json']}")


def card(
    students: Annotated[list[str], typer.Argument(
        help="Student checkpoint; with --compare, several checkpoints or card folders.")],
    eval_json: str = typer.Option(None, "--eval", help="mlffd evaluate JSON [default: the "
                                                        "test-split JSON beside the student]."),
    md_json: str = typer.Option(None, "--md", help="mlffd md JSON [default: beside it]."),
    bench_json: str = typer.Option(None, "--bench", help="Benchmark JSON."),
    compare: bool = typer.Option(False, "--compare", help="Write the model-selection guide "
                                                          "across the given students."),
    out: str = typer.Option(None, help="Output folder [default: <student>_card, or "
                                       "model_selection with --compare]."),
) -> None:
    """Model card (Markdown + self-contained HTML), or with --compare the selection guide."""
    if compare:
        from mlff_distiller.report.guide import write_selection_guide

        if eval_json or md_json or bench_json:
            raise InputError("--compare reads each student's own card; write cards with "
                             "--eval/--md/--bench first, then compare their folders")
        paths = write_selection_guide(students, out_dir=out or "model_selection")
    else:
        from mlff_distiller.report.card import write_card

        if len(students) != 1:
            raise InputError(f"mlffd card takes one student ({len(students)} given); "
                             "use --compare for several")
        paths = write_card(students[0], eval_json, md_json, bench_json, out_dir=out)
    console.print("  ".join(f"{k}: {v}" for k, v in paths.items()))
