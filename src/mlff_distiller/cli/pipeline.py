"""`mlffd distill`: the whole pipeline from one config, every stage cached."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlff_distiller.cli._common import console, err_console


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
