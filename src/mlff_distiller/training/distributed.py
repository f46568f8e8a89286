"""Data parallelism under ``torchrun``: NCCL on GPUs, gloo on CPUs.

Each process takes every ``world``-th structure of the global batch. Loss terms are
normalised by *global* counts and gradients are summed across processes (one flat
all-reduce per step), so an update equals single-process training on the same global batch
(up to float rounding). Process 0 writes files; every process runs validation on its shard
and the error sums are all-reduced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from mlff_distiller.devices import torch_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    """
    if device == "cuda":
        torch_device(device, "train.device")  # no usable GPU: say so now, not mid-training
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistInfo(device=torch.device("cuda" if use_cuda else "cpu"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
        torch.cuda.set_device(local)
        return DistInfo(rank, world, torch.device("cuda", local))
    return DistInfo(rank, world, torch.device("cpu"))


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over processes in place (no-op in a single process)."""
    if info.world > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_gradients(model: nn.Module, info: DistInfo) -> None:
    """Sum parameter gradients over processes with one flat all-reduce."""
    if info.world <= 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset: offset + n].view_as(p).clone()
        offset += n


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Process 0's decision (e.g. stop on time budget) for every process."""
    if info.world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.broadcast(t, src=0)
    return bool(t.item() > 0)
