"""validate_md end to end with tiny students (seconds, not physics-grade runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import molecule

from mlff_distiller.errors import InputError
from mlff_distiller.md.analysis import kabsch_rmsd
from mlff_distiller.md.calculator import StudentCalculator
from mlff_distiller.md.molecules import load_starts
from mlff_distiller.md.runs import MDConfig
from mlff_distiller.md.validate import validate_md
from mlff_distiller.models.checkpoint import save_student
from mlff_distiller.models.painn import PaiNNConfig
from mlff_distiller.models.presets import build_student

CFG = PaiNNConfig(hidden=8, n_interactions=1, n_rbf=4, cutoff=4.0, elements=(1, 6, 7, 8))
# 20 K: an untrained student barely binds atoms; hotter H atoms fly off within 30 fs
FAST = MDConfig(nve_steps=60, nvt_steps=60, sample_interval=5, temperature_window=20,
                temperature_K=20.0, max_temperature_factor=50.0,
                max_opt_steps=30, conformers=2)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    model = build_student(CFG, seed=3).double()
    return model, save_student(model, tmp_path_factory.mktemp("md") / "s.safetensors")


def test_student_against_itself(student, tmp_path):
    model, path = student
    res = validate_md(path, ["CCCCO", molecule("CH4")], teacher=StudentCalculator(model),
                      config=FAST, out_dir=tmp_path)
    assert [m["group"] for m in res["molecules"]] == ["CCCCO", "1:CH4"]
    for mol in res["molecules"]:
        assert mol["nve"]["stable"] and mol["nvt"]["stable"]
        assert mol["nve"]["drift_percent_per_100_steps"] >= 0
        # same calculator, same seed: identical trajectories, identical distributions
        assert mol["distributions"]["bonds_overlap"] == pytest.approx(1.0)
    opt = res["optimisation"]
    assert opt["summary"]["n_structures"] == 3  # two butanol conformers + methane
    assert opt["summary"]["rmsd_max_A"] < 1e-8
    assert opt["summary"]["energy_difference_mae_eV"] < 1e-10
    assert opt["conformer_order"]["CCCCO"]["n_conformers"] == 2
    saved = json.loads((tmp_path / "md_validation.json").read_text())
    assert saved["summary"]["n_molecules"] == 2 and saved["teacher"] == "StudentCalculator"
    assert (tmp_path / "md_energy.png").stat().st_size > 10_000
    assert (tmp_path / "md_distributions.png").is_file()


def test_without_teacher_and_exploding_student(tmp_path):
    model = build_student(CFG, seed=4).double()
    with np.errstate(all="ignore"):
        for p in model.parameters():  # a grossly wrong student: forces of order 1e3 eV/Å
            p.data.mul_(30.0)
    path = save_student(model, tmp_path / "bad.safetensors")
    res = validate_md(path, [molecule("CH4")], config=FAST, out_dir=tmp_path)
    mol = res["molecules"][0]
    assert not mol["nvt"]["stable"] and mol["nvt"]["failure"]["step"] <= FAST.nvt_steps
    assert not res["summary"]["nve_passes_drift_bar"]
    assert res["summary"]["nvt_stable_fraction"] == 0.0
    assert "rmsd_from_start_A" in res["optimisation"]["structures"][0]


def test_unseen_element_refused_before_md(student, tmp_path):
    _, path = student
    with pytest.raises(InputError, match="never seen"):
        validate_md(path, [molecule("CH4"), "CCl"], config=FAST, out_dir=tmp_path)
    assert not (tmp_path / "md_validation.json").exists()


def test_load_starts_inputs(tmp_path):
    from ase.io import write

    write(tmp_path / "two.xyz", [molecule("H2O"), molecule("NH3")])
    starts = load_starts([str(tmp_path / "two.xyz"), "CCO"], conformers=3)
    assert [s.name for s in starts[:2]] == ["two.xyz[0]", "two.xyz[1]"]
    assert len({s.group for s in starts}) == 3 and len(starts) == 5
    # distinct conformers survive, MMFF duplicates of one minimum do not
    butanol = load_starts(["CCCCO"], conformers=4)
    assert len(butanol) >= 2
    assert min(kabsch_rmsd(a.atoms.positions, b.atoms.positions)
               for i, a in enumerate(butanol) for b in butanol[i + 1:]) > 0.01
    with pytest.raises(InputError, match="SMILES"):
        load_starts(["not-a-smiles-(("])


@pytest.mark.slow
def test_compiled_validation_equals_eager(student, tmp_path):
    """``compile=True`` runs the same MD (float64 student, AOTInductor program) and reports
    its build time."""
    _, path = student
    runs = {compiled: validate_md(path, [molecule("CH4")], config=FAST, compile=compiled,
                                  out_dir=tmp_path / str(compiled))
            for compiled in (False, True)}
    assert runs[False]["student_compile_s"] is None and runs[True]["student_compile_s"] > 0
    eager, aoti = (runs[c]["molecules"][0] for c in (False, True))
    assert aoti["nve"]["stable"] and aoti["nvt"]["stable"]
    for run in ("nve", "nvt"):
        for key, value in eager[run].items():
            if isinstance(value, float):
                assert aoti[run][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (run, key)
        np.testing.assert_allclose(aoti[run]["series"]["potential_eV"],
                                   eager[run]["series"]["potential_eV"], rtol=0, atol=1e-9)
