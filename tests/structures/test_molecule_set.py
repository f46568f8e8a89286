"""The packaged default molecule set: size, elements, every SMILES parses and embeds."""

from __future__ import annotations

from rdkit import Chem

from mlff_distiller.structures.filters import min_pair_distance
from mlff_distiller.structures.sources import (
    DEFAULT_MOLECULE_SET,
    embed_conformers,
    packaged_molecule_sets,
    read_smiles_file,
)

ALLOWED = {"H", "C", "N", "O", "F", "S", "Cl"}


def test_default_set_parses_and_has_allowed_elements():
    path = packaged_molecule_sets()[DEFAULT_MOLECULE_SET]
    entries, problems = read_smiles_file(path)
    assert problems == []
    assert len(entries) >= 60
    names = [name for _, _, name in entries]
    assert len(set(names)) == len(names)
    for _, smiles, name in entries:
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= ALLOWED, name


def test_default_set_embeds_in_3d():
    entries, _ = read_smiles_file(packaged_molecule_sets()[DEFAULT_MOLECULE_SET])
    for _, smiles, name in entries:
        (atoms,) = embed_conformers(smiles, 1, seed=0, optimize=False)
        assert len(atoms) == Chem.AddHs(Chem.MolFromSmiles(smiles)).GetNumAtoms(), name
        assert min_pair_distance(atoms) > 0.8, name
