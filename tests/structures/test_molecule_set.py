"""The packaged molecule sets: size, elements, every SMILES parses and embeds."""

from __future__ import annotations

import pytest
from rdkit import Chem

from mlff_distiller.structures.filters import min_pair_distance
from mlff_distiller.structures.sources import (
    DEFAULT_MOLECULE_SET,
    embed_conformers,
    packaged_molecule_sets,
    read_smiles_file,
)

ALLOWED = {"H", "C", "N", "O", "F", "S", "Cl"}
SETS = sorted(packaged_molecule_sets())


def test_default_set_is_shipped_and_large_enough():
    assert DEFAULT_MOLECULE_SET in SETS
    entries, _ = read_smiles_file(packaged_molecule_sets()[DEFAULT_MOLECULE_SET])
    assert len(entries) >= 60


@pytest.mark.parametrize("name", SETS)
def test_set_parses_with_allowed_elements(name):
    entries, problems = read_smiles_file(packaged_molecule_sets()[name])
    assert problems == []
    names = [mol for _, _, mol in entries]
    assert len(set(names)) == len(names), "duplicate names"
    for _, smiles, mol in entries:
        atoms = Chem.AddHs(Chem.MolFromSmiles(smiles)).GetAtoms()
        assert {a.GetSymbol() for a in atoms} <= ALLOWED, mol


def test_default_set_embeds_in_3d():
    entries, _ = read_smiles_file(packaged_molecule_sets()[DEFAULT_MOLECULE_SET])
    for _, smiles, name in entries:
        (atoms,) = embed_conformers(smiles, 1, seed=0, optimize=False)
        assert len(atoms) == Chem.AddHs(Chem.MolFromSmiles(smiles)).GetNumAtoms(), name
        assert min_pair_distance(atoms) > 0.8, name


@pytest.mark.parametrize("name", SETS)
def test_no_molecule_twice_as_tautomer_stereoisomer_or_charge_state(name):
    """Two entries of one molecule could land in train and test: a leak into held-out scores."""
    from rdkit import RDLogger
    from rdkit.Chem.MolStandardize import rdMolStandardize

    RDLogger.DisableLog("rdApp.*")
    try:
        tautomers, uncharger = rdMolStandardize.TautomerEnumerator(), rdMolStandardize.Uncharger()
        seen: dict[str, str] = {}
        for _, smiles, mol in read_smiles_file(packaged_molecule_sets()[name])[0]:
            parent = tautomers.Canonicalize(uncharger.uncharge(Chem.MolFromSmiles(smiles)))
            key = Chem.MolToSmiles(parent, isomericSmiles=False)
            assert key not in seen, f"{mol} is {seen[key]} again"
            seen[key] = mol
    finally:
        RDLogger.EnableLog("rdApp.*")
