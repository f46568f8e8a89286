"""Labeled datasets: `mlffd label` (teacher labels into HDF5) and the `mlffd data` commands
(info, split, merge, filter, import, export)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mlff_distiller.cli._common import console, json_cell, print_summary
from mlff_distiller.errors import InputError


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
    print_summary(summary, as_json, f"labeled {out}")


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
        head.add_row(key, value if isinstance(value, str) else json_cell(value))
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
    print_summary(summary, as_json, f"splits of {dataset}")


def data_merge(
    inputs: Annotated[list[str], typer.Argument(help="Dataset files (e.g. shards) to merge.")],
    out: str = typer.Option(..., "--out", help="Merged dataset file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Merge shard files of one labeling job (or datasets of one teacher)."""
    from mlff_distiller.data.merge import merge_datasets

    print_summary(merge_datasets(inputs, out), as_json, f"merged into {out}")


def data_filter(
    dataset: str = typer.Argument(..., help="Dataset file (.h5)."),
    out: str = typer.Option(..., "--out", help="Filtered dataset file to write."),
    min_bond_fraction: float = typer.Option(
        None, help="Drop structures with an atom pair closer than this fraction of the sum "
        "of their covalent radii (0.6 = what `mlffd generate` rejects)."),
    max_force: float = typer.Option(None, help="Drop structures with a force component "
                                    "above this (eV/Å): teacher outliers."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with every dropped "
                                 "structure)."),
) -> None:
    """Drop crushed geometries and label outliers; keeps teacher, molecules and splits."""
    from mlff_distiller.data.filter import filter_dataset

    summary = filter_dataset(dataset, out, min_bond_fraction=min_bond_fraction,
                             max_force=max_force)
    if not as_json:
        summary = {k: v for k, v in summary.items() if k != "dropped_structures"}
    print_summary(summary, as_json, f"filtered {dataset}")


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
    print_summary(summary, as_json, f"imported {src}")


def data_export(
    dataset: str = typer.Argument(..., help="Dataset file (.h5)."),
    out: str = typer.Option(..., "--out", help="extxyz file to write."),
    split: str = typer.Option(None, help="Export only this split (train/val/test)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Export to extxyz with REF_energy / REF_forces / REF_stress (MACE's keys)."""
    from mlff_distiller.data.extxyz import export_extxyz

    print_summary(export_extxyz(dataset, out, split=split), as_json, f"exported {dataset}")
