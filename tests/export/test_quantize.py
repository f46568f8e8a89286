"""Quantization reports say honestly what each mode does (size, accuracy, MD fitness)."""

from __future__ import annotations

import pytest

from mlff_distiller.export.quantize import load_int8_student
from mlff_distiller.export.quantize_report import quantize_student
from mlff_distiller.models.checkpoint import save_student
from tests.export.conftest import student32

FAST = {"max_structures": 4, "md_steps": 30, "repeats": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("quant") / "student.safetensors"
    save_student(student32("tiny", elements=(1, 6, 7, 8)), path, metadata={"teacher": "t"})
    return path


def test_int8_weight_is_small_accurate_and_conservative(checkpoint):
    r = quantize_student(checkpoint, "int8-weight", **FAST)
    assert r["size_ratio"] < 0.4
    assert r["vs_float32"]["force_r2"] > 0.99
    assert r["fd_force_mismatch_ev_per_a"]["int8-weight"] < 1e-2
    assert r["fit_for_md"], r["unfit_reasons"]
    model = load_int8_student(r["path"])
    assert model.checkpoint_metadata["quantization"] == "int8-weight"


def test_fp16_halves_the_file(checkpoint):
    r = quantize_student(checkpoint, "fp16", **FAST)
    assert 0.4 < r["size_ratio"] < 0.6
    assert r["vs_float32"]["force_mae_ev_per_a"] > 0  # really low precision
    assert isinstance(r["fit_for_md"], bool) and "nve" in r


def test_int8_onnx_is_flagged_unfit_for_md(tmp_path):
    path = tmp_path / "s.safetensors"
    save_student(student32("ultra-tiny", elements=(1, 6, 7, 8)), path)
    r = quantize_student(path, "int8-onnx", **FAST)
    assert not r["fit_for_md"]
    assert any("not -dE/dx" in reason for reason in r["unfit_reasons"])
    assert (tmp_path / "s.int8-onnx.onnx.json").is_file()


def test_unknown_mode_is_an_input_error(checkpoint):
    from mlff_distiller.errors import InputError

    with pytest.raises(InputError, match="int8-weight"):
        quantize_student(checkpoint, "int4")


def test_dataset_gives_accuracy_vs_teacher_labels(tmp_path):
    """Labels made by the float32 student itself: its own error vs them must be ~0."""
    from ase.build import molecule

    from mlff_distiller.data.dataset import write_dataset
    from mlff_distiller.md.calculator import StudentCalculator
    from mlff_distiller.teachers.base import Labels

    model = student32("ultra-tiny", elements=(1, 6, 8))
    path = tmp_path / "s.safetensors"
    save_student(model, path)
    structures, labels = [], []
    for k in range(3):
        atoms = molecule("CH3CH2OH")
        atoms.rattle(0.05, seed=k)
        atoms.calc = StudentCalculator(model)
        labels.append(Labels(energy=atoms.get_potential_energy(), forces=atoms.get_forces()))
        atoms.calc = None
        structures.append(atoms)
    data = write_dataset(tmp_path / "d.h5", structures, labels)
    r = quantize_student(path, "int8-weight", dataset=data, **FAST)
    assert r["n_eval_structures"] == 3
    assert r["vs_teacher"]["float32"]["force_mae_ev_per_a"] < 1e-5
    assert r["vs_teacher"]["int8-weight"]["force_mae_ev_per_a"] > 0
