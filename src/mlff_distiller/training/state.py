"""Training state for ``--resume``: one safetensors file (tensors + JSON header), no pickle.

``training_state.safetensors`` holds the raw (non-EMA) weights, the EMA weights, AdamW's
moments and the torch RNG state as tensors, and in its metadata a JSON document with the
counters, the schedule, the dataset hash and both configs. It is written atomically in one
file, so a run killed at any moment resumes from a consistent state. A human-readable copy
of the JSON goes beside it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path, write_json
from mlff_distiller.training.config import RESUME_FREE_FIELDS

STATE_FILE = "training_state.safetensors"
STATE_FORMAT = "mlff-distiller-training-state"


def save_training_state(
    out_dir: str | os.PathLike,
    model: nn.Module,
    ema_model: nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
) -> Path:
    """Write the resumable state of a run to ``out_dir/training_state.safetensors``."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        tensors[f"model.{name}"] = value.detach().cpu().contiguous()
    for name, value in ema_model.state_dict().items():
        tensors[f"ema.{name}"] = value.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    header = dict(info, param_groups=opt["param_groups"])
    path = Path(out_dir) / STATE_FILE
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": STATE_FORMAT,
                                               "state": json.dumps(header)})
    write_json(path.with_suffix(".json"), header)
    return path


def load_training_state(
    out_dir: str | os.PathLike,
    model: nn.Module,
    ema_model: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    """Restore weights, EMA, optimizer and RNG in place; return the JSON header."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        raise InputError(
            f"--resume: no training state at {path}; start without --resume, or point "
            "out_dir at the directory of the run to continue"
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own types
        raise InputError(f"--resume: {path} is unreadable ({exc}); it may be corrupt") from None
    if meta.get("format") != STATE_FORMAT:
        raise InputError(f"--resume: {path} is not an mlff-distiller training state")
    header = json.loads(meta["state"])
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema_model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return header


def check_resume_compatible(
    saved: dict[str, Any], dataset_hash: str, train_config: dict, model_config: dict
) -> None:
    """Refuse to resume against another dataset or config, naming every mismatch."""
    problems = []
    if saved.get("dataset_hash") != dataset_hash:
        problems.append(
            f"dataset hash {dataset_hash!r} differs from the run's {saved.get('dataset_hash')!r}"
        )
    old_train = saved.get("train_config", {})
    for key in sorted(set(old_train) | set(train_config)):
        if key in RESUME_FREE_FIELDS:
            continue
        if old_train.get(key) != train_config.get(key):
            problems.append(f"train config {key}: run has {old_train.get(key)!r}, "
                            f"now {train_config.get(key)!r}")
    old_model = saved.get("model_config", {})
    for key in sorted(set(old_model) | set(model_config)):
        if old_model.get(key) != model_config.get(key):
            problems.append(f"model config {key}: run has {old_model.get(key)!r}, "
                            f"now {model_config.get(key)!r}")
    if problems:
        raise InputError(
            "--resume refused, this is not the same run: " + "; ".join(problems)
            + ". Resume with the original dataset and config, or start a new out_dir."
        )
