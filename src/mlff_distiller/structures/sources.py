"""Where structures come from: SMILES files (RDKit ETKDG), SDF (RDKit), anything ASE reads.

Every source yields :class:`SourceMolecule` objects: an integer id, a name, the SMILES when
known, and one or more 3-D structures (``ase.Atoms``, hydrogens explicit, Å) to augment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from mlff_distiller.errors import InputError


@dataclass
class SourceMolecule:
    """One molecule and its starting geometries."""

    molecule_id: int
    name: str
    smiles: str | None
    conformers: list[Atoms] = field(default_factory=list)


@dataclass
class SmilesProblem:
    """A SMILES line that could not be used, and why."""

    line: int
    text: str
    reason: str


#: the molecule set shipped in the package (``resources/molecules/<name>.smi``)
DEFAULT_MOLECULE_SET = "organic"


def packaged_molecule_sets() -> dict[str, Path]:
    """Name -> path of the SMILES files shipped in ``mlff_distiller/resources/molecules``."""
    from importlib.resources import files

    folder = files("mlff_distiller") / "resources" / "molecules"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".smi")}


def resolve_smiles_source(source: str | Path) -> Path:
    """A SMILES file path, or the name of a packaged set (e.g. ``organic``) -> its path."""
    path = Path(source)
    if path.is_file():
        return path
    sets = packaged_molecule_sets()
    if str(source) in sets:
        return sets[str(source)]
    raise InputError(f"SMILES source {str(source)!r} is neither a file nor a packaged molecule "
                     f"set ({', '.join(sorted(sets))})")


def read_smiles_file(path: str | Path) -> tuple[list[tuple[int, str, str]], list[SmilesProblem]]:
    """Parse a ``SMILES [name]`` per line file (``#`` comments and blank lines skipped).

    Returns:
        ``(entries, problems)``: entries are ``(line_number, smiles, name)`` for lines RDKit
        parses; problems are the others, by line number. Names default to ``mol<line>``.

    Raises:
        InputError: missing file, or a file without a single SMILES line.
    """
    from rdkit import Chem, RDLogger

    path = Path(path)
    if not path.is_file():
        raise InputError(f"SMILES file {path}: no such file")
    lines = path.read_text().splitlines()
    candidates = [(k + 1, line.split()) for k, line in enumerate(lines)
                  if line.strip() and not line.lstrip().startswith("#")]
    if not candidates:
        raise InputError(f"SMILES file {path} is empty; expected one 'SMILES name' per line, "
                         "e.g. 'CCO ethanol'")
    entries, problems = [], []
    RDLogger.DisableLog("rdApp.*")
    try:
        for line_no, fields in candidates:
            smiles = fields[0]
            name = " ".join(fields[1:]) or f"mol{line_no}"
            if Chem.MolFromSmiles(smiles) is None:
                problems.append(SmilesProblem(line_no, smiles, "RDKit cannot parse this SMILES"))
            else:
                entries.append((line_no, smiles, name))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return entries, problems


def embed_conformers(smiles: str, n_conformers: int, seed: int = 0,
                     optimize: bool = True) -> list[Atoms]:
    """3-D conformers of a SMILES: hydrogens added, RDKit ETKDGv3, optional MMFF relaxation.

    Args:
        smiles: the molecule.
        n_conformers: how many conformers to embed (RDKit may return fewer).
        seed: RDKit's random seed.
        optimize: relax each conformer with MMFF94 (UFF where MMFF lacks parameters).

    Raises:
        ValueError: the SMILES does not parse or no conformer could be embedded.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError("RDKit cannot parse this SMILES")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    # RDKit 2026.09 embeds identical conformers for randomSeed=0: offset every seed.
    params.randomSeed = 1 + abs(int(seed))
    params.pruneRmsThresh = -1.0  # near-duplicates are removed after relaxation instead
    conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if not conf_ids:
        params.useRandomCoords = True
        conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if not conf_ids:
        raise ValueError("RDKit ETKDG could not embed a 3-D conformer")
    if optimize:
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=500)
        else:
            AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=500)
    return [rdkit_to_atoms(mol, cid) for cid in conf_ids]


def read_structure_file(path: str | Path, what: str = "structure file",
                        hint: str = "") -> list[Atoms]:
    """Every frame of a file ASE reads (extxyz, xyz, sdf, ...), with clear errors for a
    missing, empty, unreadable or structure-less file (``hint`` is added to "no such file")."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path}: no such file{hint}")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty; expected extxyz, XYZ, SDF or another "
                         "format ASE reads")
    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:  # noqa: BLE001 - ASE raises many types for unparsable files
        raise InputError(f"{what} {path} cannot be read by ASE ({type(exc).__name__}: "
                         f"{exc}); expected extxyz, XYZ, SDF or another ASE format") from None
    if not frames:
        raise InputError(f"{what} {path} contains no structures")
    return list(frames)


def rdkit_to_atoms(mol, conf_id: int = -1) -> Atoms:
    """An RDKit molecule's conformer as ``ase.Atoms`` (positions in Å, no cell)."""
    numbers = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
    positions = np.asarray(mol.GetConformer(conf_id).GetPositions(), dtype=np.float64)
    return Atoms(numbers=numbers, positions=positions)


def molecules_from_smiles(path: str | Path, n_conformers: int, seed: int = 0,
                          optimize: bool = True, limit: int | None = None,
                          ) -> tuple[list[SourceMolecule], list[SmilesProblem]]:
    """Conformers for each SMILES of a file (or packaged set name); ids 0, 1, ... in order.

    Lines that do not parse or embed are returned as problems; the others proceed.
    """
    entries, problems = read_smiles_file(resolve_smiles_source(path))
    molecules = []
    for line_no, smiles, name in entries[:limit]:
        try:
            conformers = embed_conformers(smiles, n_conformers, seed=seed + line_no,
                                          optimize=optimize)
        except ValueError as exc:
            problems.append(SmilesProblem(line_no, smiles, str(exc)))
            continue
        molecules.append(SourceMolecule(len(molecules), name, smiles, conformers))
    return molecules, problems


def molecules_from_file(path: str | Path) -> list[SourceMolecule]:
    """Structures from SDF (RDKit, hydrogens added with coordinates) or any ASE format.

    SDF: one molecule per record. Other formats: frames sharing ``info['molecule_id']``
    form one molecule; frames without it are each their own molecule.

    Raises:
        InputError: missing, empty or unreadable file.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size and path.suffix.lower() in (".sdf", ".mol"):
        return _molecules_from_sdf(path)
    frames = read_structure_file(path)
    by_id: dict[object, SourceMolecule] = {}
    for k, atoms in enumerate(frames):
        key = atoms.info.get("molecule_id", f"frame{k}")
        if key not in by_id:
            name = str(atoms.info.get("molecule_name", atoms.get_chemical_formula()))
            smiles = atoms.info.get("smiles")
            by_id[key] = SourceMolecule(len(by_id), name, smiles)
        clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell,
                      pbc=atoms.pbc)
        by_id[key].conformers.append(clean)
    return list(by_id.values())


def _molecules_from_sdf(path: Path) -> list[SourceMolecule]:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        supplier = Chem.SDMolSupplier(str(path), removeHs=False)
        molecules, bad = [], []
        for k, mol in enumerate(supplier):
            if mol is None or mol.GetNumConformers() == 0:
                bad.append(k + 1)
                continue
            mol = Chem.AddHs(mol, addCoords=True)
            name = (mol.GetProp("_Name") if mol.HasProp("_Name") else "") or f"record{k + 1}"
            smiles = Chem.MolToSmiles(Chem.RemoveHs(mol))
            molecules.append(SourceMolecule(len(molecules), name, smiles, [rdkit_to_atoms(mol)]))
    finally:
        RDLogger.EnableLog("rdApp.*")
    if not molecules:
        raise InputError(f"SDF file {path}: no readable molecule with coordinates "
                         f"(unreadable records: {bad[:10]})")
    return molecules
