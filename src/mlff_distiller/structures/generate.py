"""`generate_structures(config)`: sources -> augmentations -> filters -> extxyz pool.

Every structure written carries its provenance in ``atoms.info``: ``molecule_id`` (int),
``molecule_name``, ``smiles`` (when known), ``conformer`` (index of its starting geometry),
``method`` (``conformer``, ``input``, ``rattle``, ``normal_mode``, ``md``, ``bond_scan``)
and that method's parameters as ``param_<name>`` numbers. A JSON summary (counts per
method and molecule, rejections, unparsable SMILES by line, the config) goes beside it.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from ase import Atoms

from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path, write_json
from mlff_distiller.structures import augment
from mlff_distiller.structures.config import GenerateConfig
from mlff_distiller.structures.filters import Deduplicator, min_pair_distance
from mlff_distiller.structures.sources import (
    SourceMolecule,
    molecules_from_file,
    molecules_from_smiles,
)


def summary_path(out: str | Path) -> Path:
    """Where the JSON summary of a pool goes: ``pool.extxyz`` -> ``pool.summary.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".summary.json")


def generate_structures(config: GenerateConfig, console=None) -> Path:
    """Build the structure pool a config describes and write it atomically.

    Args:
        config: sources, augmentations and filters (see :class:`GenerateConfig`).
        console: a ``rich.console.Console`` for progress (default: a new one on stderr).

    Returns:
        Path of the written extxyz pool; its summary is at :func:`summary_path`.

    Raises:
        InputError: missing/empty source, no usable molecule, unsupported elements for the
            teacher driving normal modes or MD, an empty result after filtering.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = console or Console(stderr=True)
    start = time.perf_counter()
    if config.smiles is not None:
        molecules, problems = molecules_from_smiles(
            config.smiles, config.conformers, seed=config.seed,
            optimize=config.optimize_conformers, limit=config.max_molecules)
        for p in problems:
            console.print(f"[yellow]skipped[/] {config.smiles}:{p.line} {p.text!r}: {p.reason}",
                          highlight=False)
        if not molecules:
            raise InputError(f"SMILES file {config.smiles}: none of its {len(problems)} lines "
                             "gave a molecule (see the messages above)")
    else:
        molecules = molecules_from_file(config.input)[: config.max_molecules]
        problems = []

    teacher = None
    if config.needs_teacher:
        from mlff_distiller.teachers import load_teacher

        teacher = load_teacher(config.teacher, weights=config.teacher_weights,
                               device=config.device)
        teacher.check_elements([c for m in molecules for c in m.conformers])

    dedup = Deduplicator(config.dedup_tolerance)
    kept: list[Atoms] = []
    rejected = Counter()
    failures: list[dict] = []
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, BarColumn(bar_width=0), console=console, transient=False) as bar:
        task = bar.add_task("generating", total=len(molecules))
        conformer_dedup = Deduplicator(config.dedup_tolerance)
        for molecule in molecules:
            unique = [c for c in molecule.conformers
                      if conformer_dedup.is_new(molecule.molecule_id, c)]
            rejected["duplicate_conformer"] += len(molecule.conformers) - len(unique)
            molecule.conformers = unique
            for sample, reason in _molecule_samples(molecule, config, teacher, failures):
                if reason is None and min_pair_distance(sample) < config.min_distance:
                    reason = "overlap"
                if reason is None and not dedup.is_new(molecule.molecule_id, sample):
                    reason = "duplicate"
                if reason is None:
                    kept.append(sample)
                else:
                    rejected[reason] += 1
            bar.advance(task)
    if not kept:
        raise InputError(f"generate produced no structure for {config.out} (rejected: "
                         f"{dict(rejected)}); lower min_distance or enable keep_conformers")

    import ase.io

    out = Path(config.out)
    with atomic_path(out) as tmp:
        ase.io.write(tmp, kept, format="extxyz")
    summary = {
        "pool": str(out),
        "n_structures": len(kept),
        "n_molecules": len(molecules),
        "per_method": dict(Counter(a.info["method"] for a in kept)),
        "per_molecule": {m.name: sum(a.info["molecule_id"] == m.molecule_id for a in kept)
                         for m in molecules},
        "elements": sorted({a.get_chemical_symbols()[k] for a in kept for k in range(len(a))}),
        "n_atoms": {"min": min(len(a) for a in kept), "max": max(len(a) for a in kept)},
        "rejected": dict(rejected),
        "augmentation_failures": failures,
        "unparsable_smiles": [{"line": p.line, "smiles": p.text, "reason": p.reason}
                              for p in problems],
        "teacher": teacher.name if teacher else None,
        "seconds": round(time.perf_counter() - start, 2),
        "config": config.to_dict(),
    }
    write_json(summary_path(out), summary)
    console.print(f"wrote {len(kept)} structures of {len(molecules)} molecules to {out} "
                  f"(rejected {dict(rejected) or 0}; {len(problems)} SMILES skipped)",
                  highlight=False)
    return out


def _molecule_samples(molecule: SourceMolecule, config: GenerateConfig, teacher,
                      failures: list[dict]):
    """Yield ``(atoms, rejection_reason_or_None)`` for one molecule, provenance attached."""
    start_method = "conformer" if config.smiles is not None else "input"
    for c, conformer in enumerate(molecule.conformers):
        if config.keep_conformers:
            yield _tagged(augment.bare(conformer), molecule, c, start_method, {}), None
        for method in ("rattle", "bond_scan", "normal_mode", "md"):
            rng = np.random.default_rng(
                [config.seed, molecule.molecule_id, c, zlib.crc32(method.encode())])
            try:
                samples = _augment(method, conformer, config, teacher, rng, conformer_index=c)
            except Exception as exc:  # noqa: BLE001 - one molecule's failure must not stop all
                failures.append({"molecule": molecule.name, "conformer": c, "method": method,
                                 "error": f"{type(exc).__name__}: {exc}"})
                continue
            for atoms, params in samples:
                finite = bool(np.all(np.isfinite(atoms.positions)))
                yield _tagged(atoms, molecule, c, method, params), None if finite else "non-finite"


def _tagged(atoms: Atoms, molecule: SourceMolecule, conformer: int, method: str,
            params: dict) -> Atoms:
    """Attach provenance to ``atoms.info`` (see the module docstring)."""
    atoms.info.update({"molecule_id": molecule.molecule_id, "molecule_name": molecule.name,
                       "conformer": conformer, "method": method})
    if molecule.smiles:
        atoms.info["smiles"] = molecule.smiles
    atoms.info.update({f"param_{k}": v for k, v in params.items()})
    return atoms


def _augment(method: str, atoms: Atoms, config: GenerateConfig, teacher,
             rng: np.random.Generator, conformer_index: int = 0) -> list[augment.Sample]:
    if method == "rattle" and config.rattle.n > 0:
        return augment.rattle(atoms, config.rattle.n, config.rattle.sigma, rng)
    if method == "bond_scan" and config.bond_scan.scales:
        return augment.bond_scan(atoms, config.bond_scan.scales, config.bond_scan.bonds, rng)
    if method == "normal_mode" and config.normal_modes.n > 0:
        nm = config.normal_modes
        return augment.normal_mode_samples(atoms, teacher, nm.n, nm.temperature, rng,
                                           relax_steps=nm.relax_steps,
                                           min_frequency_cm=nm.min_frequency_cm,
                                           quantum=nm.quantum)
    if method == "md" and config.md.steps > 0:
        md = config.md
        return augment.teacher_md(atoms, teacher, md.steps, md.stride,
                                  md.temperature_of(conformer_index), rng,
                                  timestep=md.timestep, friction=md.friction)
    return []
