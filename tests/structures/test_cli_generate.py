"""`mlffd generate` and `mlffd teachers` through the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import ase.io
from typer.testing import CliRunner

from mlff_distiller.cli import app
from mlff_distiller.errors import InputError


def test_generate_from_packaged_set_with_yaml_and_overrides(tmp_path):
    config = tmp_path / "gen.yaml"
    config.write_text("conformers: 2\nrattle: {n: 1, sigma: [0.02, 0.03]}\n")
    out = tmp_path / "pool.extxyz"
    result = CliRunner().invoke(app, [
        "generate", "--smiles", "organic", "--max-molecules", "4", "--out", str(out),
        "--config", str(config), "--rattle", "3", "--bond-scales", "0.9,1.1",
        "--scan-bonds", "1"])
    assert result.exit_code == 0, result.output
    frames = ase.io.read(out, index=":")
    assert {f.info["molecule_name"] for f in frames} == {"water", "ammonia", "methane",
                                                         "methanol"}
    methods = [f.info["method"] for f in frames]
    assert methods.count("rattle") == 3 * methods.count("conformer")
    assert methods.count("bond_scan") == 2 * methods.count("conformer")
    summary = json.loads((tmp_path / "pool.summary.json").read_text())
    assert summary["config"]["rattle"]["n"] == 3 and summary["config"]["conformers"] == 2


def _mlffd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from mlff_distiller.cli import main; main()",
                           *args], capture_output=True, text=True)


def test_user_errors_print_one_line(tmp_path):
    bad = tmp_path / "bad.smi"
    bad.write_text("")
    proc = _mlffd("generate", "--smiles", str(bad), "--out", str(tmp_path / "p.xyz"))
    assert proc.returncode == 2
    assert "is empty" in proc.stderr and "Traceback" not in proc.stderr


def test_workers_option(tmp_path):
    smiles = tmp_path / "mols.smi"
    smiles.write_text("CCO ethanol\nCC(=O)N acetamide\n")
    args = ["generate", "--smiles", str(smiles), "--conformers", "1", "--md-steps", "10",
            "--md-stride", "5", "--teacher", "ase:ase.calculators.emt:EMT"]
    result = CliRunner().invoke(app, [*args, "--workers", "2", "--out", str(tmp_path / "p.xyz")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "p.summary.json").read_text())
    assert summary["config"]["workers"] == 2 and summary["per_method"]["md"] == 4
    # a worker's teacher error is one line, as in one process
    proc = _mlffd(*args, "--workers", "2", "--teacher", "ase:nonexistent.mod:f",
                  "--out", str(tmp_path / "q.xyz"))
    assert proc.returncode == 2, proc.stderr
    assert "cannot import module 'nonexistent.mod'" in proc.stderr
    assert "Traceback" not in proc.stderr
    result = CliRunner().invoke(app, [*args, "--workers", "0", "--out", str(tmp_path / "q.xyz")])
    assert isinstance(result.exception, InputError)
    assert re.search(r"workers must be an integer >= 1 .*got 0", str(result.exception))


def test_teachers_listing():
    result = CliRunner().invoke(app, ["teachers", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == {"sevennet", "xtb", "orb", "mace", "ase"}
    assert rows["ase"]["installed"] is True and rows["sevennet"]["extra"] == "sevennet"
