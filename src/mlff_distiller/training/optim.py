"""Learning-rate schedule and exponential moving average of weights.

Both keep their state in plain numbers so the training state saves as JSON + tensors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from mlff_distiller.training.config import TrainConfig


@dataclass
class LRSchedule:
    """Warm-up, then cosine decay over ``total_steps`` or reduce-on-plateau.

    cosine:  lr(t) = lr * [r + (1 - r) (1 + cos(pi u)) / 2],  u = (t - w) / (T - w)
    warm-up: lr(t) = lr * (0.01 + 0.99 t / w) for t < w
    plateau: lr(t) = lr * factor^k, k = number of decays so far, floored at lr * r
    """

    peak: float
    kind: str
    warmup_steps: int
    total_steps: int
    min_ratio: float
    factor: float
    patience: int
    best: float = math.inf  # plateau: best validation metric seen
    bad_validations: int = 0
    multiplier: float = 1.0  # plateau: current decay multiplier

    @classmethod
    def from_config(cls, config: TrainConfig, total_steps: int) -> LRSchedule:
        return cls(peak=config.lr, kind=config.scheduler, warmup_steps=config.warmup_steps,
                   total_steps=max(total_steps, 1), min_ratio=config.min_lr_ratio,
                   factor=config.plateau_factor, patience=config.plateau_patience)

    def lr(self, step: int, time_fraction: float | None = None) -> float:
        """Learning rate at ``step``; with a wall-time budget, ``time_fraction`` (elapsed /
        budget) drives the cosine when it is further along than the step count."""
        if step < self.warmup_steps:
            return self.peak * (0.01 + 0.99 * step / self.warmup_steps)
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            u = min((step - self.warmup_steps) / span, 1.0)
            if time_fraction is not None:
                u = max(u, min(time_fraction, 1.0))
            r = self.min_ratio
            return self.peak * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * u)))
        return self.peak * max(self.multiplier, self.min_ratio)

    def observe(self, metric: float) -> None:
        """Plateau bookkeeping after a validation (no-op for cosine)."""
        if self.kind != "plateau":
            return
        if metric < self.best * (1 - 1e-4):
            self.best, self.bad_validations = metric, 0
        else:
            self.bad_validations += 1
            if self.bad_validations > self.patience:
                self.multiplier *= self.factor
                self.bad_validations = 0

    def state(self) -> dict:
        return asdict(self)

    def load(self, state: dict) -> None:
        for name in ("best", "bad_validations", "multiplier"):
            setattr(self, name, state[name])


class EMA:
    """Shadow weights w_ema <- d w_ema + (1 - d) w, with d = min(decay, (1 + t) / (10 + t)).

    The warm-up of ``d`` keeps early EMA weights close to the trained ones. Buffers (energy
    references, scale) are copied, not averaged. ``decay == 0`` makes the shadow a copy.
    """

    def __init__(self, model: nn.Module, shadow: nn.Module, decay: float) -> None:
        self.model, self.shadow, self.decay = model, shadow, decay
        self.copy_from_model()

    @torch.no_grad()
    def copy_from_model(self) -> None:
        self.shadow.load_state_dict(self.model.state_dict())

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.shadow.parameters(), self.model.parameters(), strict=True):
            ema_p.mul_(d).add_(p.detach(), alpha=1 - d)
        for ema_b, b in zip(self.shadow.buffers(), self.model.buffers(), strict=True):
            ema_b.copy_(b)
