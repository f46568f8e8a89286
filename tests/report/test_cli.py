"""`mlffd evaluate`, `mlffd md` and `mlffd card` call their library functions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import molecule
from typer.testing import CliRunner

from mlff_distiller.cli import app
from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.errors import InputError
from mlff_distiller.models.checkpoint import save_student
from mlff_distiller.models.painn import PaiNNConfig
from mlff_distiller.models.presets import build_student
from mlff_distiller.teachers.base import Labels


@pytest.fixture()
def student(tmp_path):
    model = build_student(PaiNNConfig(hidden=8, n_interactions=1, n_rbf=4, cutoff=4.0,
                                      elements=(1, 6, 8)), seed=0)
    return save_student(model, tmp_path / "s.safetensors", metadata={"teacher": "t"})


def test_evaluate_md_card_commands(student, tmp_path):
    runner = CliRunner()
    data = write_dataset(tmp_path / "d.h5", [molecule("H2O"), molecule("CH4")],
                         [Labels(0.0, np.zeros((3, 3))), Labels(0.0, np.zeros((5, 3)))])
    res = runner.invoke(app, ["evaluate", str(student), str(data), "--split", "all", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["dataset"]["n_structures"] == 2
    res = runner.invoke(app, ["evaluate", str(student), str(data), "--split", "all"])
    assert res.exit_code == 0, res.output
    assert "offsets removed" in res.output  # one structure per molecule: n/a, no crash
    res = runner.invoke(app, ["md", str(student), "-m", "O", "--nve-steps", "10",
                              "--nvt-steps", "10", "--temperature", "10", "--conformers", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s_md" / "md_validation.json").is_file()
    res = runner.invoke(app, ["card", str(student)])  # picks up s_md/ beside the student
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "s_card" / "card.json").read_text())
    assert card["sources"]["md"].endswith("md_validation.json")
    assert card["sources"]["evaluation"] is None  # only the test split is picked up
    res = runner.invoke(app, ["card", str(student), "--compare"])
    assert isinstance(res.exception, InputError)


def test_md_refuses_unknown_element(student):
    res = CliRunner().invoke(app, ["md", str(student), "-m", "CCl"])
    assert isinstance(res.exception, InputError) and "Cl" in str(res.exception)
