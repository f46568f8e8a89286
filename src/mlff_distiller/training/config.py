"""Training hyperparameters: one frozen dataclass, loaded from YAML with CLI overrides.

``load_train_config("train.yaml", ["lr=5e-4", "max_epochs=50"])`` reads the file, applies
the ``key=value`` overrides (values parsed as YAML scalars) and validates the result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from mlff_distiller.errors import InputError

# Fields that may change between a run and its resume (they do not change the trajectory).
RESUME_FREE_FIELDS = frozenset({"progress", "tensorboard", "max_epochs", "max_steps",
                                "time_budget_s", "num_threads", "device",
                                "budget_clock"})


@dataclass(frozen=True)
class TrainConfig:
    """How a student is trained. Defaults suit small molecule datasets on a CPU."""

    seed: int = 0  # seeds weight init and the per-epoch shuffling
    dtype: str = "float32"  # "float32" or "float64" for weights and data
    max_epochs: int = 200  # stop after this many epochs
    max_steps: int = 0  # stop after this many optimiser steps (0 = no limit)
    time_budget_s: float = 0.0  # stop after this much wall time, s (0 = no limit); the
    #                             cosine then follows elapsed time (not bit-reproducible)
    budget_clock: str = "wall"  # "wall" or "cpu" (process CPU time: fair on a busy machine)
    batch_size: int = 16  # structures per optimiser step (global, over all processes)
    lr: float = 2e-3  # peak learning rate of AdamW
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    scheduler: str = "cosine"  # "cosine" (warm-up + cosine to min_lr_ratio) or "plateau"
    warmup_steps: int = 100  # linear warm-up from lr/100 to lr
    min_lr_ratio: float = 0.02  # final lr / peak lr (cosine) or lower bound (plateau)
    plateau_factor: float = 0.5  # plateau: lr multiplier when validation stalls
    plateau_patience: int = 5  # plateau: validations without improvement before decaying
    grad_clip: float = 10.0  # max global gradient norm (0 = no clipping)
    loss_spike_factor: float = 1000.0  # skip the optimiser step of a batch whose loss is above
    # this x the median of the last 100 accepted batch losses (0 = never); 20 in a row stop
    ema_decay: float = 0.995  # EMA of weights (0 = no EMA); EMA weights are evaluated/saved
    energy_weight: float = 1.0  # weight of the per-atom energy MSE (normalised units)
    force_weight: float = 10.0  # weight of the force-component MSE (normalised units)
    stress_weight: float = 1.0  # weight of the stress MSE, periodic structures only
    hessian_weight: float = 0.0  # weight of the Hessian-row MSE (0 = off)
    val_every_steps: int = 0  # validate every N steps (0 = once per epoch)
    early_stopping_patience: int = 30  # validations without force-MAE gain before stopping
    checkpoint_every_steps: int = 200  # write last.safetensors + training state every N steps
    val_fraction_if_missing: float = 0.1  # hold out this fraction when there is no val split
    cutoff: float = 0.0  # neighbour cutoff in Å (0 = the preset's)
    num_threads: int = 0  # torch CPU threads (0 = torch's default)
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"
    progress: bool = True  # rich progress bar
    tensorboard: bool = False  # also write TensorBoard scalars (needs `tensorboard`)

    def __post_init__(self) -> None:
        problems = []
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype={self.dtype!r} (expected 'float32' or 'float64')")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device={self.device!r} (expected 'auto', 'cpu' or 'cuda')")
        if self.budget_clock not in ("wall", "cpu"):
            problems.append(f"budget_clock={self.budget_clock!r} (expected 'wall' or 'cpu')")
        if self.scheduler not in ("cosine", "plateau"):
            problems.append(f"scheduler={self.scheduler!r} (expected 'cosine' or 'plateau')")
        for name in ("max_epochs", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} (expected >= 1)")
        for name in ("max_steps", "warmup_steps", "val_every_steps", "early_stopping_patience",
                     "checkpoint_every_steps", "num_threads", "plateau_patience"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} (expected >= 0)")
        for name in ("lr", "weight_decay", "time_budget_s", "grad_clip", "loss_spike_factor",
                     "energy_weight",
                     "force_weight", "stress_weight", "hessian_weight", "cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name}={value} (expected a finite number >= 0)")
        if self.lr <= 0:
            problems.append(f"lr={self.lr} (expected > 0)")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay={self.ema_decay} (expected 0 <= decay < 1)")
        if not 0 < self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio={self.min_lr_ratio} (expected in (0, 1])")
        if not 0 < self.plateau_factor < 1:
            problems.append(f"plateau_factor={self.plateau_factor} (expected in (0, 1))")
        if not 0 < self.val_fraction_if_missing < 1:
            problems.append(
                f"val_fraction_if_missing={self.val_fraction_if_missing} (expected in (0, 1))"
            )
        if self.energy_weight == 0 and self.force_weight == 0:
            problems.append("energy_weight and force_weight are both 0 (nothing to learn)")
        if problems:
            raise InputError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping; unknown keys and wrong types are errors naming them."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InputError(
                f"{source}: unknown training option(s) {unknown}; known options: {sorted(known)}"
            )
        values = {name: _coerce(name, known[name].type, value, source) for name, value in d.items()}
        return cls(**values)


def replace_train_config(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy with ``changes`` applied and validated."""
    d = config.to_dict()
    d.update(changes)
    return TrainConfig.from_dict(d)


def load_train_config(
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> TrainConfig:
    """TrainConfig from an optional YAML file plus overrides (``"key=value"`` or a dict)."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        if not os.path.isfile(path):
            raise InputError(f"training config {str(path)!r} does not exist")
        try:
            with open(path) as fh:
                loaded = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise InputError(f"training config {path}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError(
                f"training config {path}: expected a mapping of option: value, "
                f"got {type(loaded).__name__}"
            )
        data.update(loaded or {})
    if isinstance(overrides, Mapping):
        data.update(overrides)
    else:
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise InputError(f"override {item!r}: expected key=value, e.g. lr=5e-4")
            data[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return TrainConfig.from_dict(data, source=str(path) if path else "overrides")


def _coerce(name: str, annotation: Any, value: Any, source: str) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{source}: option {name}={value!r} is not a valid {kind}"
        ) from None


__all__ = ["RESUME_FREE_FIELDS", "TrainConfig", "load_train_config", "replace_train_config"]
