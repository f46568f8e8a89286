"""TrainConfig: YAML + overrides, validation messages."""

from __future__ import annotations

import pytest

from mlff_distiller.errors import InputError
from mlff_distiller.training.config import TrainConfig, load_train_config


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("lr: 5.0e-4\nbatch_size: 8\nscheduler: plateau\n")
    config = load_train_config(path, ["batch_size=4", "hessian_weight=0.5", "progress=false"])
    assert (config.lr, config.batch_size, config.scheduler) == (5e-4, 4, "plateau")
    assert config.hessian_weight == 0.5 and config.progress is False
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("overrides, needle", [
    (["lr=-1"], "lr=-1"),
    (["bogus=1"], "unknown training option"),
    (["batch_size=two"], "batch_size='two' is not a valid int"),
    (["dtype=float16"], "dtype='float16'"),
    (["energy_weight=0", "force_weight=0"], "nothing to learn"),
    (["novalue"], "expected key=value"),
])
def test_bad_options_are_named(overrides, needle):
    with pytest.raises(InputError, match=needle):
        load_train_config(None, overrides)


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_train_config(path)


def test_example_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    assert load_train_config(root / "train.yaml") == TrainConfig()  # documents the defaults
    assert load_train_config(root / "train_hessian.yaml").hessian_weight > 0
