"""Distill config validation and acceptance gates."""

from __future__ import annotations

import pytest

from mlff_distiller import InputError
from mlff_distiller.pipeline import check_gates, generate_stage_inputs
from mlff_distiller.pipeline_config import DistillConfig
from mlff_distiller.stages import stage_key


def test_demo_config_loads_and_overrides(tmp_path):
    config = DistillConfig.load("configs/demo.yaml", ["train.time_budget_s=5", "students=[tiny]"])
    assert config.students == ("tiny",)
    assert config.train_config("tiny").time_budget_s == 5


@pytest.mark.parametrize("data, match", [
    ({"students": ["huge"]}, "students"),
    ({"gates": {"min_force_r3": 0.9}}, "min_force_r3"),
    ({"train": {"lrr": 0.1}}, "lrr"),
    ({"generate": {"conformerz": 2}}, "conformerz"),
    ({"generate": {"workers": 0}}, "workers"),
    ({"md": {"nve_stepz": 2}}, "nve_stepz"),
    ({"onpolicy": {"roundz": 1}}, "roundz"),
    ({"bogus_section": {}}, "bogus_section"),
    ({"split": {"ratio": [0.8, 0.1, 0.1]}}, "ratio"),
])
def test_typos_fail_before_any_work(data, match):
    with pytest.raises(InputError, match=match):
        DistillConfig.from_dict(data)


def test_generate_workers_keep_the_stage_key(tmp_path):
    one, two = (DistillConfig.from_dict({"generate": {"workers": n}}) for n in (1, 2))
    assert two.generate_config(tmp_path / "pool.extxyz").workers == 2
    assert stage_key(generate_stage_inputs(one)) == stage_key(generate_stage_inputs(two))
    assert generate_stage_inputs(DistillConfig.from_dict({"generate": {"conformers": 3}})) \
        != generate_stage_inputs(one)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        DistillConfig.load(tmp_path / "nope.yaml")


def test_gates_pass_fail_and_unmeasured():
    evaluation = {"forces": {"r2": 0.97, "mae": 0.05}}
    md = {"summary": {"nve_drift_percent_per_100_steps_max": 0.2}}
    verdicts = {v["gate"]: v for v in check_gates(
        {"min_force_r2": 0.95, "max_force_mae": 0.01, "max_nve_drift": 0.1,
         "max_opt_rmsd": 0.3}, evaluation, md)}
    assert verdicts["min_force_r2"]["passed"]
    assert not verdicts["max_force_mae"]["passed"]
    assert not verdicts["max_nve_drift"]["passed"]
    assert not verdicts["max_opt_rmsd"]["passed"] and verdicts["max_opt_rmsd"]["value"] is None


@pytest.mark.parametrize("name", ["demo", "organic", "xtb", "orb", "mace"])
def test_shipped_distill_configs_are_valid(name):
    config = DistillConfig.load(f"configs/{name}.yaml")
    assert config.run_dir == f"runs/{name}"


def test_missing_export_package_fails_before_any_stage(tmp_path, monkeypatch):
    import sys

    from mlff_distiller.pipeline import distill

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if it were not installed
    run_dir = tmp_path / "run"
    config = DistillConfig.load("configs/demo.yaml", [f"run_dir={run_dir}"])
    with pytest.raises(InputError, match=r"onnx export.*onnxscript.*mlff-distiller\[export\]"):
        distill(config)
    assert not run_dir.exists()  # nothing generated, labeled or trained
