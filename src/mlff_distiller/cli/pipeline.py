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


def zoo_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The pretrained zoo students: name, whether shipped, preset and hold-out accuracy."""
    import json

    from mlff_distiller.models.checkpoint import read_checkpoint_header
    from mlff_distiller.models.zoo import ZOO, zoo_path

    rows = []
    for name in ZOO:
        path = zoo_path(name)
        meta = read_checkpoint_header(path)["metadata"] if path else {}
        holdout = meta.get("holdout", {})
        rows.append({"name": name, "shipped": path is not None, "preset": meta.get("preset"),
                     "force_r2": holdout.get("force_r2"), "force_mae": holdout.get("force_mae"),
                     "command": meta.get("command"), "path": str(path) if path else None})
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="mlff-distiller model zoo (docs/zoo.md; --json adds the command)")
    table.add_column("name", no_wrap=True)
    for column in ("shipped", "preset", "hold-out force R²", "force MAE (eV/Å)"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], "yes" if r["shipped"] else "no", r["preset"] or "n/a",
                      "n/a" if r["force_r2"] is None else f"{r['force_r2']:.4f}",
                      "n/a" if r["force_mae"] is None else f"{r['force_mae']:.3f}")
    console.print(table)


def zoo_release(
    run_dir: Path = typer.Argument(..., help="A finished `mlffd distill` run whose gates passed."),
    prefix: str = typer.Option("sevennet-organic", help="Zoo names are PREFIX-PRESET."),
    command: str = typer.Option("mlffd distill configs/organic.yaml",
                                help="The command that produced the run (recorded)."),
    zoo_dir: Path = typer.Option(None, help="Where the files go [the package's resources/zoo]."),
    docs_dir: Path = typer.Option(Path("docs"), help="zoo.md and zoo/NAME/card.md go here."),
) -> None:
    """(Maintainers) release a run's students as the package's zoo files and docs."""
    from mlff_distiller.report.zoo_release import release_zoo

    released = release_zoo(run_dir, prefix=prefix, command=command, zoo_dir=zoo_dir,
                           docs_dir=docs_dir)
    for name, path in released.items():
        console.print(f"{name}: {path}", highlight=False)
