"""Students: `mlffd train` (distil a dataset into one), `mlffd sweep` (a grid of sizes),
`mlffd info` (what a checkpoint holds)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlff_distiller.cli._common import console
from mlff_distiller.errors import InputError


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
    from mlff_distiller.models.zoo import zoo_path

    model = load_student(checkpoint, config=preset)
    config = model.config
    path = zoo_path(checkpoint) or Path(checkpoint)
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
