"""`mlffd`: thin command line over the library. Parse, load config, call the library.

User errors (:class:`InputError`) are printed as one clear line, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlff_distiller.errors import InputError

app = typer.Typer(
    name="mlffd",
    help="Distil foundation force fields into small, fast PaiNN students, and prove them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Distil foundation force fields into small, fast PaiNN students, and prove them."""


@app.command()
def info(
    checkpoint: str = typer.Argument(..., help="Student checkpoint (.safetensors) or zoo name."),
    preset: str = typer.Option(None, help="Preset for legacy checkpoints without a config."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Preset, parameter count, elements, cutoff and metadata of a student."""
    from ase.data import chemical_symbols

    from mlff_distiller.models.checkpoint import load_student
    from mlff_distiller.models.painn import count_parameters
    from mlff_distiller.models.presets import preset_name

    model = load_student(checkpoint, config=preset)
    config = model.config
    path = Path(checkpoint)
    summary = {
        "checkpoint": str(checkpoint),
        "preset": preset_name(config) or "custom",
        "parameters": count_parameters(model),
        "file_size_bytes": path.stat().st_size if path.is_file() else None,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "elements": [chemical_symbols[z] for z in config.elements],
        "cutoff_angstrom": config.cutoff,
        "config": config.to_dict(),
        "metadata": getattr(model, "checkpoint_metadata", {}),
    }
    if as_json:
        console.print_json(json.dumps(summary))
        return
    table = Table(title=f"student {checkpoint}", show_header=False)
    for key in ("preset", "parameters", "file_size_bytes", "dtype", "elements", "cutoff_angstrom"):
        value = summary[key]
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    table.add_row("architecture", ", ".join(f"{k}={v}" for k, v in config.to_dict().items()
                                            if k != "elements"))
    for key, value in summary["metadata"].items():
        table.add_row(f"metadata.{key}", json.dumps(value) if not isinstance(value, str) else value)
    console.print(table)


# --- structures and teachers: generate, teachers -------------------------------------------
def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--{name}: expected comma-separated numbers, got {text!r}") from None


@app.command()
def generate(
    smiles: str = typer.Option(None, help="SMILES file ('SMILES name' per line) or a packaged "
                               "set name (organic)."),
    input: str = typer.Option(None, "--input", help="SDF, XYZ/extxyz or any ASE-readable file."),
    out: str = typer.Option(None, "--out", help="Output pool (.extxyz); summary JSON beside."),
    config: str = typer.Option(None, help="YAML GenerateConfig; options below override it."),
    conformers: int = typer.Option(None, help="ETKDG conformers per SMILES [4]."),
    max_molecules: int = typer.Option(None, help="Use only the first N molecules."),
    rattle: int = typer.Option(None, help="Rattled copies per conformer [2]."),
    rattle_sigma: str = typer.Option(None, help="Rattle sigma range 'low,high' in Å [0.01,0.08]."),
    normal_modes: int = typer.Option(None, help="Normal-mode samples per conformer [0]."),
    nm_temperature: float = typer.Option(None, help="Normal-mode sampling temperature, K [300]."),
    md_steps: int = typer.Option(None, help="Teacher Langevin MD steps per conformer [0]."),
    md_stride: int = typer.Option(None, help="Keep an MD frame every N steps [20]."),
    md_temperature: float = typer.Option(None, help="MD temperature, K [500]."),
    bond_scales: str = typer.Option(None, help="Bond scan scales, e.g. '0.85,0.93,1.1,1.25'."),
    scan_bonds: int = typer.Option(None, help="Random bonds scanned per conformer [2]."),
    min_distance: float = typer.Option(None, help="Reject structures with a pair closer, Å [0.5]."),
    seed: int = typer.Option(None, help="Random seed [0]."),
    teacher: str = typer.Option(None, help="Teacher driving normal modes / MD [sevennet]."),
    teacher_weights: str = typer.Option(None, help="Teacher weights file (offline use)."),
    device: str = typer.Option(None, help="Torch device for the teacher [cpu]."),
) -> None:
    """Generate a structure pool: conformers from SMILES or structures from a file, augmented
    (rattle, normal modes, teacher MD, bond scans), deduplicated, written as extxyz."""
    from mlff_distiller.structures import GenerateConfig, generate_structures

    cfg = GenerateConfig.load(config, {
        "smiles": smiles, "input": input, "out": out, "conformers": conformers,
        "max_molecules": max_molecules, "rattle.n": rattle,
        "rattle.sigma": _floats(rattle_sigma, "rattle-sigma"), "normal_modes.n": normal_modes,
        "normal_modes.temperature": nm_temperature, "md.steps": md_steps,
        "md.stride": md_stride, "md.temperature": md_temperature,
        "bond_scan.scales": _floats(bond_scales, "bond-scales"), "bond_scan.bonds": scan_bonds,
        "min_distance": min_distance,
        "seed": seed, "teacher": teacher, "teacher_weights": teacher_weights, "device": device,
    })
    path = generate_structures(cfg, console=err_console)
    console.print(str(path))


@app.command()
def teachers(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List teacher adapters, the extra each needs, and whether it is installed."""
    from mlff_distiller.teachers import available_teachers

    rows = available_teachers()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="teachers")
    for column in ("name", "extra", "installed"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["extra"] or "-", "yes" if row["installed"] else "no")
    console.print(table)


# --- dataset: label, data info / split / merge / import / export ---------------------------
data_app = typer.Typer(help="Inspect, split, merge, import and export labeled datasets.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _json_cell(value) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _print_summary(summary: dict, as_json: bool, title: str) -> None:
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        table.add_row(key, value if isinstance(value, str) else _json_cell(value))
    console.print(table)


@app.command()
def label(
    pool: str = typer.Argument(..., help="Structure pool (extxyz from `mlffd generate`)."),
    teacher: str = typer.Option("sevennet", help="Teacher: sevennet, xtb, orb, mace, "
                                "ase:module:factory."),
    out: str = typer.Option(..., "--out", help="Dataset file to write (.h5)."),
    workers: int = typer.Option(1, help="Local worker processes (CPU actors on Ray)."),
    chunk_size: int = typer.Option(32, help="Structures per chunk (unit of resume)."),
    hessian_rows: int = typer.Option(0, help="Hessian rows per structure (0 = none)."),
    ray_address: str = typer.Option(None, help="Ray cluster address ('auto', "
                                    "'ray://host:port', or 'local')."),
    shard: str = typer.Option(None, help="Label only shard i/n of the pool, e.g. 0/4."),
    seed: int = typer.Option(0, help="Seed of the Hessian row choice."),
    teacher_weights: str = typer.Option(None, help="Teacher weights file (offline use)."),
    device: str = typer.Option("cpu", help="Torch device for the teacher."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Label a structure pool with a teacher into an HDF5 dataset (resumable: rerun after a
    crash to finish)."""
    from mlff_distiller.data.labeling import label_structures

    summary = label_structures(pool, teacher, out, workers=workers, chunk_size=chunk_size,
                               hessian_rows=hessian_rows, ray_address=ray_address, shard=shard,
                               seed=seed, teacher_weights=teacher_weights, device=device)
    _print_summary(summary, as_json, f"labeled {out}")


@data_app.command("info")
def data_info(
    dataset: str = typer.Argument(..., help="Dataset file (.h5)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Counts per element / molecule / split and energy / force distributions."""
    from mlff_distiller.data.inspect import dataset_info

    summary = dataset_info(dataset)
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    head = Table(title=f"dataset {dataset}", show_header=False)
    for key, value in {**summary["file"], **summary["counts"]}.items():
        head.add_row(key, value if isinstance(value, str) else _json_cell(value))
    console.print(head)
    elements = Table("element", "Z", "atoms", "structures", title="elements")
    for symbol, row in summary["elements"].items():
        elements.add_row(symbol, str(row["Z"]), f"{row['atoms']:,}", f"{row['structures']:,}")
    console.print(elements)
    molecules = Table("molecule id", "name", "frames",
                      title=f"molecules (largest {len(summary['molecules']['largest'])} of "
                            f"{summary['counts']['molecules']})")
    for row in summary["molecules"]["largest"]:
        molecules.add_row(str(row["id"]), row["name"] or "-", str(row["frames"]))
    console.print(molecules)
    splits = Table("split", "molecules", "structures", "atoms", title="splits (by molecule)")
    for name, row in summary["splits"].items():
        if name != "method":
            splits.add_row(name, str(row["molecules"]), str(row["structures"]), str(row["atoms"]))
    if summary["splits"]:
        console.print(splits)
    else:
        console.print(f"no splits: create them with `mlffd data split {dataset}`")
    dist = Table("quantity", "mean", "std", "min", "max", title="label distributions")
    for name, unit in (("energy", "eV"), ("energy_per_atom", "eV/atom"),
                       ("frames_per_molecule", "")):
        row = summary["molecules"][name] if name == "frames_per_molecule" else summary[name]
        dist.add_row(f"{name} {unit}".strip(),
                     *(f"{row[k]:.4g}" if row[k] is not None else "-"
                       for k in ("mean", "std", "min", "max")))
    console.print(dist)
    forces = summary["forces"]
    pct = ", ".join(f"p{k}={v:.3g}" for k, v in forces["norm_percentiles"].items())
    console.print(f"|F| eV/Å: mean {forces['norm_mean']:.4g}, max {forces['norm_max']:.4g}, "
                  f"{pct}; component std {[round(x, 4) for x in forces['component_std']]}")


@data_app.command("split")
def data_split(
    dataset: str = typer.Argument(..., help="Dataset file (.h5), updated in place."),
    ratios: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions of molecules."),
    seed: int = typer.Option(0, help="Seed of the molecule shuffle."),
    train_ids: str = typer.Option(None, help="Explicit comma-separated molecule ids."),
    val_ids: str = typer.Option(None, help="Explicit comma-separated molecule ids."),
    test_ids: str = typer.Option(None, help="Explicit comma-separated molecule ids."),
    overwrite: bool = typer.Option(False, help="Replace existing splits."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Split by molecule (never by frame) into train / val / test, stored in the file."""
    from mlff_distiller.data.splits import split_dataset

    def ints(text: str | None, name: str) -> list[int] | None:
        if text is None:
            return None
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"--{name}: expected comma-separated integers, got {text!r}") from None
    try:
        fractions = [float(x) for x in ratios.split(",")]
    except ValueError:
        raise InputError(f"--ratios: expected three comma-separated numbers, got {ratios!r}"
                         ) from None
    summary = split_dataset(dataset, ratios=fractions, seed=seed,
                            train_ids=ints(train_ids, "train-ids"),
                            val_ids=ints(val_ids, "val-ids"), test_ids=ints(test_ids, "test-ids"),
                            overwrite=overwrite)
    _print_summary(summary, as_json, f"splits of {dataset}")


@data_app.command("merge")
def data_merge(
    inputs: Annotated[list[str], typer.Argument(help="Dataset files (e.g. shards) to merge.")],
    out: str = typer.Option(..., "--out", help="Merged dataset file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Merge shard files of one labeling job (or datasets of one teacher)."""
    from mlff_distiller.data.merge import merge_datasets

    _print_summary(merge_datasets(inputs, out), as_json, f"merged into {out}")


@data_app.command("import")
def data_import(
    src: str = typer.Argument(..., help="Labeled extxyz (MACE REF_* keys)."),
    out: str = typer.Option(..., "--out", help="Dataset file to write (.h5)."),
    energy_key: str = typer.Option("REF_energy", help="info key of the energy (eV)."),
    forces_key: str = typer.Option("REF_forces", help="Per-atom key of forces (eV/Å)."),
    stress_key: str = typer.Option("REF_stress", help="info key of the stress (eV/Å^3)."),
    teacher: str = typer.Option(None, help="Name of the method that made the labels."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import labels from extxyz (REF_energy / REF_forces / REF_stress)."""
    from mlff_distiller.data.extxyz import import_extxyz

    summary = import_extxyz(src, out, energy_key=energy_key, forces_key=forces_key,
                            stress_key=stress_key, teacher=teacher)
    _print_summary(summary, as_json, f"imported {src}")


@data_app.command("export")
def data_export(
    dataset: str = typer.Argument(..., help="Dataset file (.h5)."),
    out: str = typer.Option(..., "--out", help="extxyz file to write."),
    split: str = typer.Option(None, help="Export only this split (train/val/test)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Export to extxyz with REF_energy / REF_forces / REF_stress (MACE's keys)."""
    from mlff_distiller.data.extxyz import export_extxyz

    _print_summary(export_extxyz(dataset, out, split=split), as_json, f"exported {dataset}")


@app.command()
def train(
    dataset: str = typer.Argument(..., help="Labeled dataset (.h5) with train/val splits."),
    preset: str = typer.Option("original", help="Student size: original, tiny, ultra-tiny."),
    config: str = typer.Option(None, "--config", help="Training YAML (see configs/train.yaml)."),
    out: str = typer.Option("runs/student", "--out", help="Run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    epochs: int = typer.Option(None, help="Override max_epochs."),
    lr: float = typer.Option(None, help="Override the peak learning rate."),
    batch_size: int = typer.Option(None, help="Override the global batch size."),
    dtype: str = typer.Option(None, help="float32 (default) or float64."),
    hessian_weight: float = typer.Option(None, help="Hessian-row loss weight (0 = off)."),
    seed: int = typer.Option(None, help="Override the seed."),
    overrides: Annotated[list[str], typer.Option("--set", help="Any option, key=value "
                                                 "(repeatable), e.g. --set ema_decay=0.999")
                         ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Distil the dataset's teacher labels into a student (runs under torchrun for DDP)."""
    from mlff_distiller.training.config import load_train_config
    from mlff_distiller.training.trainer import train_student

    options = dict(max_epochs=epochs, lr=lr, batch_size=batch_size, dtype=dtype,
                   hessian_weight=hessian_weight, seed=seed)
    explicit = [f"{k}={v}" for k, v in options.items() if v is not None]
    train_config = load_train_config(config, explicit + list(overrides or []))
    result = train_student(dataset, preset, train_config, out, resume=resume)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only process 0 reports
        return
    metrics = result["metrics"]
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    final = metrics["final"]
    console.print(
        f"[bold]{preset}[/] ({metrics['parameters']:,} parameters): stopped by "
        f"{metrics['stop_reason']} after {metrics['steps']} steps; best val force MAE "
        f"{1000 * metrics['best_val_force_mae']:.2f} meV/Å, energy MAE "
        f"{1000 * final['val_energy_mae_per_atom']:.2f} meV/atom; "
        f"{metrics['structures_per_s']:.0f} structures/s"
    )
    console.print(f"best: {result['best_checkpoint']}  last: {result['last_checkpoint']}  "
                  f"log: {result['log_csv']}")


@app.command()
def sweep(
    dataset: str = typer.Argument(..., help="Labeled dataset (.h5)."),
    hidden: str = typer.Option("32,64,128", help="Comma-separated hidden sizes."),
    interactions: str = typer.Option("2,3", help="Comma-separated interaction counts."),
    rbf: str = typer.Option("10,20", help="Comma-separated radial basis sizes."),
    config: str = typer.Option(None, "--config", help="Training YAML shared by all points."),
    out: str = typer.Option("runs/sweep", "--out", help="Sweep directory."),
    overrides: Annotated[list[str], typer.Option("--set", help="Training option key=value "
                                                 "(repeatable).")] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a grid of student sizes; write the accuracy-vs-speed Pareto table and figure."""
    from mlff_distiller.training.config import load_train_config
    from mlff_distiller.training.sweep import sweep_students

    def ints(text: str, name: str) -> list[int]:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"--{name}: expected comma-separated integers, got {text!r}"
                             ) from None

    train_config = load_train_config(config, list(overrides or []))
    result = sweep_students(dataset, ints(hidden, "hidden"), ints(interactions, "interactions"),
                            ints(rbf, "rbf"), train_config, out)
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    console.print(Path(result["table_md"]).read_text())
    console.print(f"table: {result['table_md']}  json: {result['table_json']}  "
                  f"figure: {result['figure']}")


@app.command()
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
            ("conformer Spearman", res["conformer_ranking"]["spearman_mean"], "")):
        table.add_row(name, "n/a" if value is None else f"{value:.4g} {unit}")
    console.print(table)
    if res["dataset"]["n_skipped"]:
        console.print(f"[yellow]skipped {res['dataset']['n_skipped']} structures with elements "
                      f"{res['dataset']['skipped_elements']} the student does not know[/]")
    console.print(f"json: {res['files']['json']}  figure: {res['files']['figure']}")


@app.command()
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
                      device=device)
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
    console.print(f"json: {res['files']['json']}")


@app.command()
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


# --- deployment: export, quantize, bench ----------------------------------------------
@app.command("export")
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


@app.command()
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


@app.command()
def bench(
    students: Annotated[list[str], typer.Argument(help="Student checkpoints.")],
    teacher: str = typer.Option(None, help="Teacher name timed in the same run (sevennet...)."),
    formats: str = typer.Option("eager,torchscript,onnx,aoti",
                                help="eager,torchscript,onnx,onnx-pinned,aoti"),
    batch_sizes: str = typer.Option("1,2,4,8,16,32,64", help="Structures per call."),
    threads: str = typer.Option("1,2", help="CPU thread counts."),
    repeats: int = typer.Option(10, help="Timed calls per configuration (median)."),
    out: str = typer.Option("bench", help="Output folder (JSON, plot, exports)."),
) -> None:
    """Latency / throughput per format, batch size and threads; teacher speed-up."""
    from mlff_distiller.bench.runner import benchmark

    ints = [[int(x) for x in _floats(text, name)] for text, name in
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


@app.command()
def distill(
    config: Path = typer.Argument(..., help="Distillation config YAML (see configs/demo.yaml)."),
    override: list[str] = typer.Option(
        [], "--set", help="Override a config value: section.key=value (repeatable)."),
) -> None:
    """Teacher to proven, exported students: every stage, cached; exits 1 when a gate fails."""
    from mlff_distiller.pipeline import distill as run_distill
    from mlff_distiller.pipeline_config import DistillConfig

    summary = run_distill(DistillConfig.load(config, override), console=err_console)
    table = Table(title=f"mlffd distill: {summary['run_dir']}")
    for column in ("student", "force R²", "force MAE", "NVE drift %/100", "NVT stable",
                   "gates"):
        table.add_column(column)
    for preset, s in summary["students"].items():
        f, md = s["forces"], s["md"]

        def fmt(value):
            return "n/a" if value is None else f"{value:.4g}"

        table.add_row(preset, fmt(f.get("r2")), fmt(f.get("mae")),
                      fmt(md.get("nve_drift_percent_per_100_steps_max")),
                      fmt(md.get("nvt_stable_fraction")), s["verdict"])
    console.print(table)
    console.print(f"report: {summary['report']}")
    if not summary["passed"]:
        failed = [f"{p}: {g['gate']}" for p, s in summary["students"].items()
                  for g in s["gates"] if not g["passed"]]
        err_console.print(f"[bold red]gates failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: run the app, print user errors without a traceback."""
    try:
        app()
    except InputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
