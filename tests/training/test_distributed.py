"""Two gloo processes on a CPU train like one process on the same global batch."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from mlff_distiller.models.presets import build_student
from mlff_distiller.training.config import TrainConfig
from mlff_distiller.training.state import STATE_FILE
from mlff_distiller.training.trainer import train_student

from .helpers import STUDENT_CONFIG, ddp_worker, free_port, make_dataset


def test_two_process_gloo_equals_single_process(tmp_path):
    data = make_dataset(tmp_path / "d.h5", n_per_molecule=3)  # 15 training structures
    # odd global batch (5) and molecules of different sizes: ranks see unequal atom counts
    config = TrainConfig(max_epochs=3, batch_size=5, dtype="float64", warmup_steps=2,
                         progress=False, device="cpu", num_threads=1)
    single = train_student(data, STUDENT_CONFIG, config, tmp_path / "single")
    mp.spawn(ddp_worker, args=(2, free_port(), str(data), str(tmp_path / "ddp"),
                               config.to_dict()), nprocs=2, join=True)
    expected = load_file(str(tmp_path / "single" / STATE_FILE))
    actual = load_file(str(tmp_path / "ddp" / STATE_FILE))
    initial = build_student(STUDENT_CONFIG, seed=0).energy_model.state_dict()
    compared = 0
    for name, value in expected.items():
        if name.startswith(("model.", "ema.")) and value.is_floating_point():
            torch.testing.assert_close(actual[name], value, rtol=1e-9, atol=1e-10)
            compared += 1
    assert compared > 20
    trained = expected["model.energy_model.readout.mlp.0.weight"]
    assert not torch.allclose(initial["readout.mlp.0.weight"].double(), trained)
    assert single["metrics"]["steps"] == 9
    ddp_metrics = (tmp_path / "ddp" / "metrics.json").read_text()
    assert '"steps": 9' in ddp_metrics
