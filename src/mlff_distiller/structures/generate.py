"""`generate_structures(config)`: sources -> augmentations -> filters -> extxyz pool.

Every structure written carries its provenance in ``atoms.info``: ``molecule_id`` (int),
``molecule_name``, ``smiles`` (when known), ``conformer`` (index of its starting geometry),
``method`` (``conformer``, ``input``, ``rattle``, ``normal_mode``, ``md``, ``bond_scan``)
and that method's parameters as ``param_<name>`` numbers. A JSON summary (counts per
method and molecule, rejections, unparsable SMILES by line, the config) goes beside it.

With ``workers > 1`` the teacher work (MD, normal modes) runs in that many spawned processes,
one molecule per task, each process with its own teacher and ``cpus // workers`` torch
threads. Results are taken in molecule order and filtered here exactly as in one process
(every augmentation is seeded per molecule, conformer and method), so the pool is the same:
bit for bit when the teacher's numbers do not depend on its thread count (EMT, any run with
equal threads per teacher); float32 torch teachers (SevenNet) differ at round-off, ~1e-7 Å,
as runs on machines with different core counts do. Without teacher work (rattle, bond scans
only) ``workers`` is ignored: that work is cheap.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path, write_json
from mlff_distiller.processes import threads_per_worker
from mlff_distiller.structures import augment
from mlff_distiller.structures.config import GenerateConfig
from mlff_distiller.structures.filters import Deduplicator, min_bond_fraction, min_pair_distance
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

    dedup = Deduplicator(config.dedup_tolerance)
    kept: list[Atoms] = []
    rejected = Counter()
    failures: list[dict] = []
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeElapsedColumn())
    with (_teacher_runner(config, molecules) as (teacher_name, run),
          Progress(*columns, BarColumn(bar_width=0), console=console, transient=False) as bar):
        task = bar.add_task("generating", total=len(molecules))
        conformer_dedup = Deduplicator(config.dedup_tolerance)
        for molecule in molecules:
            unique = [c for c in molecule.conformers
                      if conformer_dedup.is_new(molecule.molecule_id, c)]
            rejected["duplicate_conformer"] += len(molecule.conformers) - len(unique)
            molecule.conformers = unique
        for molecule, (samples, molecule_failures) in zip(molecules, run(molecules),
                                                          strict=True):
            failures.extend(molecule_failures)
            for sample, reason in samples:
                if reason is None and min_pair_distance(sample) < config.min_distance:
                    reason = "overlap"
                if (reason is None and config.min_bond_fraction > 0
                        and min_bond_fraction(sample) < config.min_bond_fraction):
                    reason = "crushed_bond"
                if reason is None and not dedup.is_new(molecule.molecule_id, sample):
                    reason = "duplicate"
                if reason is None:
                    kept.append(sample)
                else:
                    rejected[reason] += 1
            bar.advance(task)
    if not kept:
        raise InputError(f"generate produced no structure for {config.out} (rejected: "
                         f"{dict(rejected)}); lower min_distance / min_bond_fraction or "
                         "enable keep_conformers")

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
        "teacher": teacher_name,
        "seconds": round(time.perf_counter() - start, 2),
        "config": config.to_dict(),
    }
    write_json(summary_path(out), summary)
    console.print(f"wrote {len(kept)} structures of {len(molecules)} molecules to {out} "
                  f"(rejected {dict(rejected) or 0}; {len(problems)} SMILES skipped)",
                  highlight=False)
    return out


MoleculeResult = tuple[list[tuple[Atoms, str | None]], list[dict]]  # samples, failures
Runner = Callable[[Sequence[SourceMolecule]], Iterator[MoleculeResult]]


@contextlib.contextmanager
def _teacher_runner(config: GenerateConfig,
                    molecules: Sequence[SourceMolecule]) -> Iterator[tuple[str | None, Runner]]:
    """Load the teacher (here or in ``config.workers`` processes) and check its elements.

    Yields the teacher's name (None without teacher work) and a function mapping molecules
    to their :data:`MoleculeResult`, in molecule order. Worker processes end on exit.
    """
    conformers = [c for m in molecules for c in m.conformers]
    if not config.needs_teacher or config.workers == 1 or len(molecules) == 1:
        teacher = None
        if config.needs_teacher:
            from mlff_distiller.teachers import load_teacher

            teacher = load_teacher(config.teacher, weights=config.teacher_weights,
                                   device=config.device)
            teacher.check_elements(conformers)

        def run(todo: Sequence[SourceMolecule]) -> Iterator[MoleculeResult]:
            for molecule in todo:
                failures: list[dict] = []
                yield list(_molecule_samples(molecule, config, teacher, failures)), failures

        yield (teacher.name if teacher else None), run
        return

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = threads_per_worker(config.workers)
    pool = ProcessPoolExecutor(max_workers=config.workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(config, threads))
    try:
        # one task per worker spawns all of them (each loads its teacher) before any MD; a
        # teacher that cannot load, or lacks an element, raises its InputError here (or, in a
        # worker these tasks missed, at its first molecule)
        names = [f.result() for f in [pool.submit(_worker_ready, conformers)
                                      for _ in range(config.workers)]]

        def run(todo: Sequence[SourceMolecule]) -> Iterator[MoleculeResult]:
            window: deque = deque()
            for molecule in todo:
                window.append(pool.submit(_worker_molecule, molecule))
                if len(window) >= 4 * config.workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

        yield names[0], run
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- worker processes (spawned; see _teacher_runner) ------------------------------------
_WORKER_CONFIG: GenerateConfig | None = None
_WORKER_TEACHER = None  # the worker's Teacher, or the exception that stopped loading it


def _init_worker(config: GenerateConfig, threads: int) -> None:
    global _WORKER_CONFIG, _WORKER_TEACHER
    import torch

    from mlff_distiller.processes import exit_with_parent

    torch.set_num_threads(threads)
    exit_with_parent()
    _WORKER_CONFIG = config
    try:
        from mlff_distiller.teachers import load_teacher

        _WORKER_TEACHER = load_teacher(config.teacher, weights=config.teacher_weights,
                                       device=config.device)
    except Exception as exc:  # noqa: BLE001 - raised in the parent by _worker_teacher
        _WORKER_TEACHER = exc


def _worker_teacher():
    if isinstance(_WORKER_TEACHER, Exception):
        raise _WORKER_TEACHER
    return _WORKER_TEACHER


def _worker_ready(conformers: list[Atoms]) -> str:
    teacher = _worker_teacher()
    teacher.check_elements(conformers)
    return teacher.name


def _worker_molecule(molecule: SourceMolecule) -> MoleculeResult:
    failures: list[dict] = []
    samples = list(_molecule_samples(molecule, _WORKER_CONFIG, _worker_teacher(), failures))
    return samples, failures


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
