"""--resume: a run killed with SIGKILL and resumed ends with the same weights as an
uninterrupted run; resuming against another dataset or config is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from mlff_distiller.errors import InputError
from mlff_distiller.training.config import TrainConfig
from mlff_distiller.training.state import STATE_FILE
from mlff_distiller.training.trainer import train_student

from .helpers import STUDENT_CONFIG, make_dataset

CONFIG = TrainConfig(max_epochs=15, batch_size=4, warmup_steps=5, checkpoint_every_steps=4,
                     early_stopping_patience=0, scheduler="plateau", plateau_patience=1,
                     progress=False, num_threads=1)
CHILD = """
import json, sys
from mlff_distiller.models.painn import PaiNNConfig
from mlff_distiller.training.config import TrainConfig
from mlff_distiller.training.trainer import train_student
a = json.loads(sys.argv[1])
train_student(a["data"], PaiNNConfig.from_dict(a["model"]), TrainConfig.from_dict(a["train"]),
              a["out"], resume=a["resume"])
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "d.h5", n_per_molecule=4)


def _state_step(out) -> int:
    try:
        return json.loads((out / "training_state.json").read_text())["run"]["step"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def _weights(out) -> dict[str, torch.Tensor]:
    state = load_file(str(out / STATE_FILE))
    state.pop("rng.torch")
    last = load_file(str(out / "last.safetensors"))
    return {**state, **{f"last.{k}": v for k, v in last.items()}}


def test_sigkill_then_resume_matches_uninterrupted_run(dataset, tmp_path):
    reference = train_student(dataset, STUDENT_CONFIG, CONFIG, tmp_path / "reference")
    out = tmp_path / "killed"
    args = {"data": str(dataset), "model": STUDENT_CONFIG.to_dict(), "train": CONFIG.to_dict(),
            "out": str(out), "resume": False}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)],
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while _state_step(out) < 8 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = _state_step(out)
    assert child.returncode == -signal.SIGKILL and not (out / "metrics.json").exists()
    assert 8 <= killed_at < reference["metrics"]["steps"], killed_at

    resumed = train_student(dataset, STUDENT_CONFIG, CONFIG, out, resume=True)
    assert resumed["metrics"]["steps"] == reference["metrics"]["steps"]
    expected, actual = _weights(tmp_path / "reference"), _weights(out)
    assert expected.keys() == actual.keys()
    for name in expected:  # bit-identical: same seed, same order, same optimizer state
        assert torch.equal(expected[name], actual[name]), name
    logs = [json.loads(open(r["log_json"]).read()) for r in (reference, resumed)]
    strip = [[{k: v for k, v in e.items() if k != "elapsed_s"} for e in log] for log in logs]
    assert strip[0] == strip[1]


def test_resume_refuses_other_config_or_dataset(dataset, tmp_path):
    short = replace(CONFIG, max_epochs=1)
    train_student(dataset, STUDENT_CONFIG, short, tmp_path / "run")
    with pytest.raises(InputError, match=r"train config lr: run has 0.002, now 0.001"):
        train_student(dataset, STUDENT_CONFIG, replace(short, lr=1e-3), tmp_path / "run",
                      resume=True)
    other = make_dataset(tmp_path / "other.h5", n_per_molecule=4, seed=1)
    with pytest.raises(InputError, match="dataset hash"):
        train_student(other, STUDENT_CONFIG, short, tmp_path / "run", resume=True)
    with pytest.raises(InputError, match="no training state"):
        train_student(dataset, STUDENT_CONFIG, short, tmp_path / "fresh", resume=True)


@pytest.mark.parametrize("stop", ["time_budget", "early_stopping"])
def test_resuming_a_finished_run_takes_no_step(dataset, tmp_path, stop):
    """A run that stopped on its time budget or on early stopping, resumed with the same
    config (as `mlffd distill` does to remake a deleted checkpoint), trains no further: same
    step, same weights. A raised budget (free on resume) lets it go on."""
    if stop == "time_budget":
        config = replace(CONFIG, max_epochs=10_000, time_budget_s=1.5)
    else:
        config = replace(CONFIG, max_epochs=10_000, early_stopping_patience=1, lr=0.05)
    first = train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")
    assert first["metrics"]["stop_reason"] == stop
    best = (tmp_path / "run" / "best.safetensors").read_bytes()
    before = _weights(tmp_path / "run")
    again = train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run", resume=True)
    assert again["metrics"]["stop_reason"] == stop
    assert again["metrics"]["steps"] == first["metrics"]["steps"]
    assert (tmp_path / "run" / "best.safetensors").read_bytes() == best
    after = _weights(tmp_path / "run")
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    if stop == "time_budget":
        longer = replace(config, time_budget_s=3.0)
        more = train_student(dataset, STUDENT_CONFIG, longer, tmp_path / "run", resume=True)
        assert more["metrics"]["steps"] > first["metrics"]["steps"]
