"""Round trips: every format writes, reloads and matches the eager student (E, F, stress)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk, molecule

from mlff_distiller.export import export_student, load_export
from mlff_distiller.export.api import parity_path
from mlff_distiller.export.calculators import ExportCalculator
from mlff_distiller.md.calculator import StudentCalculator
from mlff_distiller.models.presets import PRESETS
from tests.export.conftest import student32


def _assert_export_ok(result, model, fmt):
    parity = result["parity"]
    assert parity["passed"], json.dumps(parity, indent=1)
    assert set(parity["cases"]) >= {"molecule", "periodic", "single_atom", "batch"}
    assert parity["cases"]["batch"]["n_structures"] > 1
    assert parity["cases"]["single_atom"]["n_edges"] == 0
    for case in parity["cases"].values():
        assert case["max_abs_force_error_ev_per_a"] < 1e-5
    stored = json.loads(parity_path(result["path"]).read_text())
    assert stored["parity"]["passed"]
    meta = load_export(result["path"]).metadata
    assert meta["cutoff"] == pytest.approx(model.cutoff)
    assert meta["elements"] == list(model.elements)
    assert meta["teacher"] == "sevennet-0"
    assert meta["units"]["forces"] == "eV/Angstrom"
    assert meta["format"] == fmt


def _assert_calculator_matches(path, model):
    calc, ref = ExportCalculator(path), StudentCalculator(model)
    for atoms in (molecule("CH3CH2OH"), bulk("Si", "diamond", a=5.43) * (2, 1, 1)):
        atoms.rattle(0.05, seed=1)
        atoms.calc = ref
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        s = atoms.get_stress() if atoms.pbc.all() else None
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(e, abs=1e-4)
        np.testing.assert_allclose(atoms.get_forces(), f, atol=1e-5)
        if s is not None:
            np.testing.assert_allclose(atoms.get_stress(), s, atol=1e-6)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_torchscript_round_trip(tmp_path, preset):
    model = student32(preset)
    result = export_student(model, "torchscript", tmp_path / "s.ts")
    _assert_export_ok(result, model, "torchscript")
    _assert_calculator_matches(tmp_path / "s.ts", model)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_metatomic_round_trip_through_metatomic_ase(tmp_path, preset):
    """Parity runs metatomic's own ASE calculator (its neighbour list, its autograd)."""
    model = student32(preset)
    result = export_student(model, "metatomic", tmp_path / "s.pt")
    _assert_export_ok(result, model, "metatomic")


def test_onnx_round_trip_and_calculator(onnx_export):
    model, path, result = onnx_export
    _assert_export_ok(result, model, "onnx")
    _assert_calculator_matches(path, model)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["original", "tiny"])
def test_onnx_round_trip_presets(tmp_path, preset):
    model = student32(preset)
    _assert_export_ok(export_student(model, "onnx", tmp_path / "s.onnx"), model, "onnx")


@pytest.mark.slow
def test_aoti_round_trip(tmp_path):
    """AOTInductor compiles C++ (about a minute on 2 busy cores): one preset only."""
    model = student32("ultra-tiny")
    result = export_student(model, "aoti", tmp_path / "s.pt2")
    _assert_export_ok(result, model, "aoti")
    _assert_calculator_matches(tmp_path / "s.pt2", model)


def test_bad_format_and_missing_file_are_input_errors(tmp_path):
    from mlff_distiller.errors import InputError

    with pytest.raises(InputError, match="unknown export format"):
        export_student(student32(), "tflite", tmp_path / "x")
    with pytest.raises(InputError, match="does not exist"):
        load_export(tmp_path / "missing.onnx")


def test_metatomic_selected_atoms_sum_their_atomic_energies(tmp_path):
    """LAMMPS passes selected_atoms (its local atoms, not ghosts): only they may count."""
    import torch

    from mlff_distiller.data.graph import atoms_to_graph

    model = student32("tiny")
    path = tmp_path / "s.pt"
    export_student(model, "metatomic", path, check=False)  # imports metatensor safely
    from metatensor.torch import Labels
    from metatomic.torch import ModelOutput
    from metatomic_ase import MetatomicCalculator

    atoms = molecule("CH3CH2OH")
    calc = MetatomicCalculator(str(path), device="cpu")
    chosen = [0, 2, 5]
    selected = Labels(["system", "atom"], torch.tensor([[0, i] for i in chosen], dtype=torch.int32))
    out = calc.run_model(atoms, {"energy": ModelOutput(unit="eV", sample_kind="system")},
                         selected_atoms=selected)
    graph = atoms_to_graph(atoms, model.cutoff)
    expected = model.energy_model.atomic_energies(graph)[chosen].sum()
    assert float(out["energy"].block().values[0, 0]) == pytest.approx(float(expected), abs=1e-5)
