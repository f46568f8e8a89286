"""Structures and teachers: `mlffd generate` (the structure pool), `mlffd teachers`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from mlff_distiller.cli._common import console, err_console, floats


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
    min_bond_fraction: float = typer.Option(
        None, help="Reject structures with a pair closer than this x their covalent radii "
        "sum [0.6]; 0 = off."),
    seed: int = typer.Option(None, help="Random seed [0]."),
    teacher: str = typer.Option(None, help="Teacher driving normal modes / MD [sevennet]."),
    teacher_weights: str = typer.Option(None, help="Teacher weights file (offline use)."),
    device: str = typer.Option(None, help="Torch device for the teacher [cpu]."),
    workers: int = typer.Option(None, help="Processes running MD / normal modes of molecules "
                                "in parallel, each with its own teacher [1]. Same pool."),
) -> None:
    """Generate a structure pool: conformers from SMILES or structures from a file, augmented
    (rattle, normal modes, teacher MD, bond scans), deduplicated, written as extxyz."""
    from mlff_distiller.structures import GenerateConfig, generate_structures

    cfg = GenerateConfig.load(config, {
        "smiles": smiles, "input": input, "out": out, "conformers": conformers,
        "max_molecules": max_molecules, "rattle.n": rattle,
        "rattle.sigma": floats(rattle_sigma, "rattle-sigma"), "normal_modes.n": normal_modes,
        "normal_modes.temperature": nm_temperature, "md.steps": md_steps,
        "md.stride": md_stride, "md.temperature": md_temperature,
        "bond_scan.scales": floats(bond_scales, "bond-scales"), "bond_scan.bonds": scan_bonds,
        "min_distance": min_distance, "min_bond_fraction": min_bond_fraction,
        "seed": seed, "teacher": teacher, "teacher_weights": teacher_weights, "device": device,
        "workers": workers,
    })
    path = generate_structures(cfg, console=err_console)
    console.print(str(path))


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
