"""`mlffd info` on saved presets and user errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mlff_distiller import build_student, save_student
from mlff_distiller.cli import app
from mlff_distiller.models.painn import count_parameters


@pytest.mark.parametrize("preset", ["original", "tiny", "ultra-tiny"])
def test_info_reports_preset_and_parameters(tmp_path, preset):
    model = build_student(preset)
    path = save_student(model, tmp_path / f"{preset}.safetensors", metadata={"teacher": "t"})
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["preset"] == preset
    assert info["parameters"] == count_parameters(model)
    assert info["elements"] == ["H", "C", "N", "O", "F", "S", "Cl"]
    assert info["cutoff_angstrom"] == model.cutoff == (4.0 if preset == "tiny" else 5.0)
    assert info["metadata"] == {"teacher": "t"}
    table = CliRunner().invoke(app, ["info", str(path)])
    assert f"{count_parameters(model):,}" in table.output


def test_cli_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 10)
    proc = subprocess.run([sys.executable, "-c", "from mlff_distiller.cli import main; main()",
                           "info", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
