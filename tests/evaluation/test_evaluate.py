"""evaluate_student end to end on a tiny dataset labeled by known models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase.build import molecule

from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.errors import InputError
from mlff_distiller.evaluation.evaluate import evaluate_student
from mlff_distiller.models.checkpoint import save_student
from mlff_distiller.models.painn import PaiNNConfig
from mlff_distiller.models.presets import build_student
from mlff_distiller.teachers.base import Labels
from mlff_distiller.testing import predict

CFG = PaiNNConfig(hidden=8, n_interactions=1, n_rbf=4, cutoff=4.0, elements=(1, 6, 7, 8))


def _conformers():
    rng = np.random.default_rng(0)
    out, ids = [], []
    for mol_id, name in enumerate(("H2O", "CH3OH", "CH3CONH2")):
        for _ in range(4):
            atoms = molecule(name)
            atoms.positions += 0.05 * rng.normal(size=atoms.positions.shape)
            out.append(atoms)
            ids.append(mol_id)
    return out, ids


def _dataset(path, labeler):
    structures, ids = _conformers()
    labels = []
    for atoms in structures:
        p = predict(labeler, atoms)
        labels.append(Labels(energy=float(p["energy"][0]), forces=p["forces"]))
    return write_dataset(path, structures, labels, molecule_ids=ids,
                         metadata={"teacher": "toy-teacher", "teacher_version": "1"})


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    model = build_student(CFG, seed=1).double()
    path = save_student(model, tmp / "student.safetensors", metadata={"teacher": "toy-teacher"})
    return model, path


def test_self_labels_give_perfect_scores(student, tmp_path):
    model, path = student
    data = _dataset(tmp_path / "self.h5", model)
    res = evaluate_student(path, data, split="all", out_dir=tmp_path / "out")
    f, e = res["forces"], res["energy"]
    assert f["rmse"] < 1e-9 and f["r2"] == pytest.approx(1.0)
    assert f["angular_error_mean_deg"] < 1e-4
    assert e["mae_per_atom"] < 1e-9
    assert res["conformer_ranking"]["n_molecules"] == 3
    assert res["conformer_ranking"]["spearman_mean"] == pytest.approx(1.0)
    assert set(res["per_element"]) == {"H", "C", "N", "O"}
    assert res["dataset"]["n_structures"] == 12 and res["dataset"]["teacher"] == "toy-teacher"
    saved = json.loads((tmp_path / "out" / "evaluation_all.json").read_text())
    assert saved["forces"]["r2"] == pytest.approx(1.0)
    assert (tmp_path / "out" / "evaluation_all.png").stat().st_size > 20_000


def test_other_teacher_metrics_match_direct_computation(student, tmp_path):
    model, path = student
    teacher = build_student(CFG, seed=2).double()
    data = _dataset(tmp_path / "other.h5", teacher)
    res = evaluate_student(path, data, split=None, out_dir=tmp_path)
    structures, _ = _conformers()
    pf = np.concatenate([predict(model, a)["forces"] for a in structures])
    rf = np.concatenate([predict(teacher, a)["forces"] for a in structures])
    assert res["forces"]["rmse"] == pytest.approx(math.sqrt(np.mean((pf - rf) ** 2)), rel=1e-6)
    assert res["forces"]["r2"] < 0.99
    assert res["per_element"]["N"]["n_atoms"] == 4  # one N in each acetamide conformer
    assert len(res["per_molecule"]) == 3


def test_disjoint_elements_refused(tmp_path):
    model = build_student(PaiNNConfig(hidden=8, n_interactions=1, n_rbf=4, elements=(29,)))
    path = save_student(model, tmp_path / "cu.safetensors")
    structures, _ = _conformers()
    labels = [Labels(energy=0.0, forces=np.zeros((len(a), 3))) for a in structures]
    data = write_dataset(tmp_path / "org.h5", structures, labels)
    with pytest.raises(InputError, match="no element in common"):
        evaluate_student(path, data, split="all", out_dir=tmp_path)


def test_partial_overlap_skips_and_reports(student, tmp_path):
    _, path = student
    structures = [molecule("H2O"), molecule("CH3Cl"), molecule("CH4")]
    labels = [Labels(energy=0.0, forces=np.zeros((len(a), 3))) for a in structures]
    data = write_dataset(tmp_path / "cl.h5", structures, labels)
    res = evaluate_student(path, data, split="all", out_dir=tmp_path)
    assert res["dataset"]["n_skipped"] == 1 and res["dataset"]["skipped_elements"] == [17]
    assert res["dataset"]["n_structures"] == 2


def test_missing_split_is_input_error(student, tmp_path):
    _, path = student
    data = write_dataset(tmp_path / "d.h5", [molecule("H2O")],
                         [Labels(energy=0.0, forces=np.zeros((3, 3)))])
    with pytest.raises(InputError, match="split"):
        evaluate_student(path, data, split="test", out_dir=tmp_path)
