"""generate_structures end to end: sources, provenance, filters, summary, bad input."""

from __future__ import annotations

import json

import ase.io
import pytest
from ase.build import molecule

from mlff_distiller.errors import InputError
from mlff_distiller.structures import GenerateConfig, generate_structures, summary_path
from mlff_distiller.structures.filters import min_pair_distance
from mlff_distiller.teachers.base import Teacher

SMILES = "# comment\nCCO ethanol\n\nC1CC(( broken\nc1ccccc1 benzene\nCC(=O)N acetamide\n"


@pytest.fixture
def smiles_file(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text(SMILES)
    return path


def _generate(tmp_path, **options):
    config = GenerateConfig.load(None, {"out": str(tmp_path / "pool.extxyz"), **options})
    return generate_structures(config)


def test_pool_with_provenance_and_summary(tmp_path, smiles_file):
    out = _generate(tmp_path, smiles=str(smiles_file), conformers=3, **{
        "rattle.n": 2, "bond_scan.scales": [0.85, 1.2], "bond_scan.bonds": 1,
        "md.steps": 20, "md.stride": 10, "teacher": "ase:ase.calculators.emt:EMT"})
    frames = ase.io.read(out, index=":")
    summary = json.loads(summary_path(out).read_text())
    assert summary["n_structures"] == len(frames) and summary["n_molecules"] == 3
    assert summary["unparsable_smiles"] == [
        {"line": 4, "smiles": "C1CC((", "reason": "RDKit cannot parse this SMILES"}]
    assert set(summary["per_method"]) == {"conformer", "rattle", "bond_scan", "md"}
    names = {f.info["molecule_id"]: f.info["molecule_name"] for f in frames}
    assert names == {0: "ethanol", 1: "benzene", 2: "acetamide"}
    for f in frames:
        assert f.info["smiles"] in ("CCO", "c1ccccc1", "CC(=O)N")
        assert f.calc is None and min_pair_distance(f) >= 0.5
    rattled = [f for f in frames if f.info["method"] == "rattle"]
    assert all(0.01 <= f.info["param_sigma"] <= 0.08 for f in rattled)
    assert {f.info["param_step"] for f in frames if f.info["method"] == "md"} == {10, 20}
    # benzene's rigid ring gives one distinct conformer: the others are duplicates
    benzene = [f for f in frames if f.info["molecule_name"] == "benzene"
               and f.info["method"] == "conformer"]
    assert len(benzene) == 1 and summary["rejected"]["duplicate_conformer"] >= 2
    assert not list(tmp_path.glob(".pool.extxyz.*"))  # atomic write left no temp file


def test_md_temperature_list_cycles_over_conformers(tmp_path):
    smiles = tmp_path / "butanol.smi"
    smiles.write_text("CCCCO butanol\n")
    out = _generate(tmp_path, smiles=str(smiles), conformers=3, **{
        "rattle.n": 0, "md.steps": 10, "md.stride": 10, "md.temperature": [300, 600],
        "teacher": "ase:ase.calculators.emt:EMT"})
    md = {f.info["conformer"]: f.info["param_temperature"] for f in ase.io.read(out, ":")
          if f.info["method"] == "md"}
    assert len(md) >= 2
    assert all(t == (300.0, 600.0)[c % 2] for c, t in md.items())
    for bad in ([], [300, -5], ["hot"]):
        with pytest.raises(InputError, match="md.temperature"):
            GenerateConfig.from_dict({"smiles": "organic", "md": {"temperature": bad}})


def test_deterministic_for_a_seed(tmp_path, smiles_file):
    a = _generate(tmp_path / "a", smiles=str(smiles_file), seed=3).read_text()
    b = _generate(tmp_path / "b", smiles=str(smiles_file), seed=3).read_text()
    c = _generate(tmp_path / "c", smiles=str(smiles_file), seed=4).read_text()
    assert a == b and a != c


def test_workers_give_the_same_pool(tmp_path, smiles_file):
    options = {"smiles": str(smiles_file), "conformers": 2, "rattle.n": 1, "md.steps": 20,
               "md.stride": 10, "teacher": "ase:ase.calculators.emt:EMT"}
    serial = _generate(tmp_path / "serial", **options)
    parallel = _generate(tmp_path / "parallel", workers=2, **options)
    assert parallel.read_text() == serial.read_text()
    assert {f.info["method"] for f in ase.io.read(parallel, ":")} >= {"conformer", "md"}
    summaries = [json.loads(summary_path(p).read_text()) for p in (serial, parallel)]
    for key in ("rejected", "augmentation_failures", "teacher", "per_molecule"):
        assert summaries[0][key] == summaries[1][key]


def test_workers_option_and_teacher_errors(tmp_path, smiles_file):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match=rf"workers must be an integer >= 1.*{bad!r}"):
            GenerateConfig.from_dict({"smiles": "organic", "workers": bad})
    options = {"smiles": str(smiles_file), "md.steps": 10, "teacher": "ase:nonexistent.mod:f"}
    with pytest.raises(InputError, match="cannot import module 'nonexistent.mod'") as serial:
        _generate(tmp_path, **options)
    with pytest.raises(InputError) as parallel:
        _generate(tmp_path, workers=2, **options)
    assert str(parallel.value) == str(serial.value)


def test_overlap_rejection(tmp_path, smiles_file):
    out = _generate(tmp_path, smiles=str(smiles_file), min_distance=0.95,
                    **{"bond_scan.scales": [0.7], "bond_scan.bonds": 2, "rattle.n": 0})
    summary = json.loads(summary_path(out).read_text())
    assert summary["rejected"]["overlap"] > 0
    assert all(min_pair_distance(f) >= 0.95 for f in ase.io.read(out, index=":"))
    with pytest.raises(InputError, match="no structure"):
        _generate(tmp_path, smiles=str(smiles_file), min_distance=5.0)


def test_crushed_bonds_are_rejected(tmp_path):
    """A C-H squeezed to 0.55 Å (0.51 of its covalent length) is dropped; 0.8 Å is kept."""
    from mlff_distiller.structures.filters import min_bond_fraction

    frames = []
    for k, length in enumerate((0.55, 0.8)):
        atoms = molecule("CH4")
        h = atoms.positions[1] - atoms.positions[0]
        atoms.positions[1] = atoms.positions[0] + h / ((h @ h) ** 0.5) * length
        atoms.info["molecule_id"] = k
        frames.append(atoms)
    ase.io.write(tmp_path / "in.extxyz", frames)
    assert min_bond_fraction(frames[0]) < 0.6 < min_bond_fraction(frames[1])
    out = _generate(tmp_path, input=str(tmp_path / "in.extxyz"), **{"rattle.n": 0})
    kept = ase.io.read(out, index=":")
    assert [f.info["molecule_id"] for f in kept] == [1]
    assert json.loads(summary_path(out).read_text())["rejected"]["crushed_bond"] == 1
    off = _generate(tmp_path, input=str(tmp_path / "in.extxyz"), min_bond_fraction=0,
                    **{"rattle.n": 0})
    assert len(ase.io.read(off, index=":")) == 2
    with pytest.raises(InputError, match="min_bond_fraction"):
        GenerateConfig.load(None, {"smiles": "organic", "min_bond_fraction": 1.5})


def test_structure_files_as_input(tmp_path):
    frames = []
    for k, name in enumerate(["H2O", "H2O", "NH3"]):
        atoms = molecule(name)
        atoms.positions += 0.05 * k
        atoms.info["molecule_id"] = 0 if name == "H2O" else 7
        frames.append(atoms)
    ase.io.write(tmp_path / "in.extxyz", frames)
    out = _generate(tmp_path, input=str(tmp_path / "in.extxyz"), **{"rattle.n": 1})
    result = ase.io.read(out, index=":")
    inputs = [f for f in result if f.info["method"] == "input"]
    assert len(inputs) == 2  # the two waters differ only by a translation: one kept
    assert [f.info["molecule_id"] for f in inputs] == [0, 1]
    assert len([f for f in result if f.info["method"] == "rattle"]) == 2


def test_sdf_input_adds_hydrogens(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    mol = Chem.RemoveHs(mol)
    mol.SetProp("_Name", "ethanol")
    writer = Chem.SDWriter(str(tmp_path / "in.sdf"))
    writer.write(mol)
    writer.close()
    out = _generate(tmp_path, input=str(tmp_path / "in.sdf"), **{"rattle.n": 0})
    (frame,) = ase.io.read(out, index=":")
    assert frame.get_chemical_formula() == "C2H6O" and frame.info["molecule_name"] == "ethanol"
    assert 0.9 < min_pair_distance(frame) < 1.2


@pytest.mark.parametrize("content, message", [("", "empty"), ("# only a comment\n", "empty"),
                                              ("C1CC((\nxx(\n", "none of its 2 lines")])
def test_bad_smiles_files(tmp_path, content, message):
    path = tmp_path / "bad.smi"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        _generate(tmp_path, smiles=str(path))


def test_bad_inputs_and_config(tmp_path):
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(InputError, match="empty"):
        _generate(tmp_path, input=str(tmp_path / "empty.xyz"))
    with pytest.raises(InputError, match="exactly one source"):
        GenerateConfig.load(None, {})
    with pytest.raises(InputError, match="unknown option"):
        GenerateConfig.from_dict({"smiles": "organic", "rattles": 3})
    with pytest.raises(InputError, match=r"md: unknown option\(s\) \['temp'\]"):
        GenerateConfig.from_dict({"smiles": "organic", "md": {"temp": 3}})
    (tmp_path / "gen.yaml").write_text("smiles: organic\nrattle: {n: 1, sigma: [0.02, 0.03]}\n")
    cfg = GenerateConfig.load(tmp_path / "gen.yaml", {"rattle.n": 5, "seed": None})
    assert cfg.rattle.n == 5 and cfg.rattle.sigma == (0.02, 0.03) and cfg.seed == 0


class _NoSulfur(Teacher):
    name = "no-sulfur"
    supported_elements = frozenset({1, 6})

    def calculator(self):
        raise AssertionError("labeling must not start")


def test_unsupported_elements_refused_before_md(tmp_path, monkeypatch):
    import mlff_distiller.teachers as teachers

    monkeypatch.setattr(teachers, "load_teacher", lambda *args, **kwargs: _NoSulfur())
    path = tmp_path / "s.smi"
    path.write_text("CS methanethiol\n")
    with pytest.raises(InputError, match=r"\['S'\]"):
        _generate(tmp_path, smiles=str(path), **{"md.steps": 10})
