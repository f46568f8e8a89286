"""`mlffd train` / `mlffd sweep` end to end on a tiny dataset."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mlff_distiller.cli import app
from mlff_distiller.models.checkpoint import read_checkpoint_header

from .helpers import make_dataset

runner = CliRunner()


def test_train_cli_with_yaml_and_overrides(tmp_path):
    data = make_dataset(tmp_path / "d.h5", n_per_molecule=2)
    yaml_path = tmp_path / "t.yaml"
    yaml_path.write_text("batch_size: 4\nprogress: false\nwarmup_steps: 2\n")
    result = runner.invoke(app, ["train", str(data), "--preset", "ultra-tiny", "--config",
                                 str(yaml_path), "--epochs", "2", "--set", "ema_decay=0.9",
                                 "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    header = read_checkpoint_header(out["best_checkpoint"])
    assert header["config"]["hidden"] == 32 and header["metadata"]["preset"] == "ultra-tiny"
    assert header["metadata"]["train_config"]["ema_decay"] == 0.9
    assert out["metrics"]["epochs"] == 2
    bad = runner.invoke(app, ["train", str(data), "--set", "lr=-1", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "lr=-1" in str(bad.exception)


def test_sweep_writes_pareto_table_and_figure(tmp_path):
    data = make_dataset(tmp_path / "d.h5", n_per_molecule=2)
    result = runner.invoke(app, ["sweep", str(data), "--hidden", "8,16", "--interactions", "1",
                                 "--rbf", "4", "--out", str(tmp_path / "sweep"), "--set",
                                 "max_epochs=2", "--set", "progress=false", "--set",
                                 "batch_size=4", "--set", "cutoff=4.0", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    points = out["points"]
    assert [p["hidden"] for p in points] == [8, 16]
    assert points[0]["parameters"] < points[1]["parameters"]
    assert any(p["pareto"] for p in points)
    assert all(p["latency_ms"] > 0 and p["val_force_mae"] > 0 for p in points)
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 16 | 1 | 4 |" in (tmp_path / "sweep" / "sweep.md").read_text()
