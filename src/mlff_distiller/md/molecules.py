"""Starting structures for MD validation: ASE ``Atoms``, structure files, or SMILES.

Every start carries a ``group`` (the molecule it is a conformer of) used to judge whether a
student keeps the teacher's conformer energy order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from mlff_distiller.errors import InputError

DUPLICATE_RMSD_A = 0.01  # conformers of one SMILES closer than this (Å) are one start


@dataclass
class Start:
    """One starting geometry: ``name`` for reports, ``group`` = molecule it belongs to."""

    atoms: Atoms
    name: str
    group: str


def load_starts(molecules: Sequence[Atoms | str], conformers: int = 3,
                seed: int = 0) -> list[Start]:
    """Resolve ``molecules`` into starting geometries.

    Each entry is an ``ase.Atoms``, the path of a structure file ASE can read (every frame is
    a start; frames with the same formula form one group), or a SMILES string (``conformers``
    conformers from :func:`mlff_distiller.structures.sources.embed_conformers`).
    """
    if isinstance(molecules, (str, Atoms)):
        molecules = [molecules]
    if not molecules:
        raise InputError("no molecules given: pass SMILES strings, structure files or Atoms")
    starts: list[Start] = []
    for k, entry in enumerate(molecules):
        if isinstance(entry, Atoms):
            formula = entry.get_chemical_formula()
            starts.append(Start(entry.copy(), f"{k}:{formula}", f"{k}:{formula}"))
        elif isinstance(entry, str) and Path(entry).is_file():
            starts.extend(_from_file(Path(entry)))
        elif isinstance(entry, str):
            starts.extend(_from_smiles(entry, conformers, seed))
        else:
            raise InputError(f"molecule {k}: expected a SMILES, a file path or ase.Atoms, got "
                             f"{type(entry).__name__}")
    for s in starts:
        if s.atoms.pbc.any():
            raise InputError(f"{s.name}: periodic structures are not supported by MD "
                             "validation, which checks molecules; pass isolated molecules")
    return starts


def _from_file(path: Path) -> list[Start]:
    from ase.io import read

    try:
        frames = read(str(path), index=":")
    except Exception as exc:  # noqa: BLE001 - ASE raises many types for unreadable files
        raise InputError(f"{path}: ASE could not read it as a structure file ({exc})") from None
    frames = frames if isinstance(frames, list) else [frames]
    return [Start(a, f"{path.name}[{i}]", f"{path.name}:{a.get_chemical_formula()}")
            for i, a in enumerate(frames)]


def _from_smiles(smiles: str, conformers: int, seed: int) -> list[Start]:
    from rdkit import RDLogger

    from mlff_distiller.structures.sources import embed_conformers

    RDLogger.DisableLog("rdApp.*")
    try:
        # RDKit's ETKDG (2026.09) embeds identical conformers for randomSeed=0: shift by one
        frames = embed_conformers(smiles, int(conformers), seed=seed + 1)
    except ValueError as exc:
        raise InputError(f"{smiles!r} is neither an existing file nor a usable SMILES "
                         f"string ({exc})") from None
    from mlff_distiller.md.analysis import kabsch_rmsd

    distinct: list[Atoms] = []  # MMFF often relaxes several embeddings to one minimum
    for atoms in frames:
        if all(kabsch_rmsd(atoms.positions, d.positions) > DUPLICATE_RMSD_A for d in distinct):
            distinct.append(atoms)
    return [Start(a, f"{smiles}[{i}]", smiles) for i, a in enumerate(distinct)]


def check_elements(starts: Sequence[Start], elements: Sequence[int], who: str) -> None:
    """Refuse, before any MD, starts with elements outside ``elements``."""
    from ase.data import chemical_symbols

    known = set(int(z) for z in elements)
    for s in starts:
        unknown = sorted(set(int(z) for z in s.atoms.numbers) - known)
        if unknown:
            raise InputError(
                f"molecule {s.name}: element(s) {[chemical_symbols[z] for z in unknown]} were "
                f"never seen by {who} (knows {[chemical_symbols[z] for z in sorted(known)]}); "
                "remove the molecule or use a student trained on those elements")
