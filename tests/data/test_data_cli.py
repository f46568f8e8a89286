"""The dataset verbs end to end through the CLI, with a real teacher spec."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mlff_distiller.cli import app
from tests.data.helpers import small_pool, write_pool

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout  # progress bars go to stderr


def test_label_split_info_export_import_merge(tmp_path):
    pool = write_pool(tmp_path / "pool.extxyz", small_pool(16))
    spec = "ase:ase.calculators.emt:EMT"
    for i in (0, 1):
        _ok(["label", pool, "--teacher", spec, "--out", str(tmp_path / f"s{i}.h5"),
             "--shard", f"{i}/2", "--chunk-size", "5"])
    data = str(tmp_path / "data.h5")
    merged = json.loads(_ok(["data", "merge", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5"),
                             "--out", data, "--json"]))
    assert merged["n_structures"] == 16 and merged["missing_shards"] == {}
    summary = json.loads(_ok(["data", "split", data, "--ratios", "0.5,0.25,0.25", "--json"]))
    assert [summary[s]["molecules"] for s in ("train", "val", "test")] == [2, 1, 1]
    info = json.loads(_ok(["data", "info", data, "--json"]))
    assert info["counts"]["structures"] == 16 and info["counts"]["molecules"] == 4
    assert set(info["elements"]) == {"H", "C", "N", "O"}
    assert "elements" in _ok(["data", "info", data])
    _ok(["data", "export", data, "--out", str(tmp_path / "train.extxyz"), "--split", "train"])
    back = json.loads(_ok(["data", "import", str(tmp_path / "train.extxyz"), "--out",
                           str(tmp_path / "back.h5"), "--json"]))
    assert back["n_structures"] == summary["train"]["structures"]
    kept = json.loads(_ok(["data", "filter", data, "--out", str(tmp_path / "f.h5"),
                           "--min-bond-fraction", "0.6", "--max-force", "1e4", "--json"]))
    assert kept["n_structures"] == 16 and kept["dropped_structures"] == []
    assert "dropped_structures" not in _ok(["data", "filter", data, "--out",
                                            str(tmp_path / "g.h5"), "--max-force", "1e4"])


@pytest.mark.parametrize("args, message", [
    (["data", "info", "missing.h5"], "no such file"),
    (["data", "split", "missing.h5"], "no such file"),
    (["data", "filter", "missing.h5", "--out", "f.h5", "--max-force", "1"], "no such file"),
    (["label", "missing.extxyz", "--teacher", "xtb", "--out", "x.h5"], "no such file"),
])
def test_bad_input_is_an_input_error(args, message, tmp_path, monkeypatch):
    from mlff_distiller.errors import InputError

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert isinstance(result.exception, InputError) and message in str(result.exception)
