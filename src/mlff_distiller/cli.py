"""`mlffd`: thin command line over the library. Parse, load config, call the library.

User errors (:class:`InputError`) are printed as one clear line, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def main() -> None:
    """Console-script entry point: run the app, print user errors without a traceback."""
    try:
        app()
    except InputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
