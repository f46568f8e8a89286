"""`mlffd export` / `quantize` / `bench`: thin commands over the library."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mlff_distiller.cli import app
from mlff_distiller.models.checkpoint import save_student
from tests.export.conftest import student32


def test_export_cli_writes_checked_torchscript(tmp_path):
    path = save_student(student32("ultra-tiny"), tmp_path / "s.safetensors")
    result = CliRunner().invoke(app, ["export", str(path), "--format", "torchscript"])
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output and (tmp_path / "s.ts").is_file()
    assert json.loads((tmp_path / "s.ts.json").read_text())["parity"]["passed"]


def test_export_cli_bad_format_is_a_clean_error(tmp_path):
    path = save_student(student32("ultra-tiny"), tmp_path / "s.safetensors")
    result = CliRunner().invoke(app, ["export", str(path), "--format", "tflite"])
    assert result.exit_code != 0
    assert "unknown export format" in str(result.exception)


def test_bench_cli_prints_table_and_writes_json(tmp_path):
    path = save_student(student32("ultra-tiny", elements=(1, 6, 8)), tmp_path / "s.safetensors")
    result = CliRunner().invoke(app, [
        "bench", str(path), "--formats", "eager", "--batch-sizes", "1,2", "--threads", "1",
        "--repeats", "1", "--out", str(tmp_path / "b"),
    ])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "benchmark.json").is_file()
    assert "C3H8O" in result.output and "benchmark.png" in result.output
