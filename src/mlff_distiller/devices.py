"""Torch devices named by users (``device="cuda"``, ``--device cuda:1``), checked up front.

A device torch cannot use fails here with an :class:`~mlff_distiller.errors.InputError`
naming the input, instead of deep inside the first ``.to(device)`` (an ``AssertionError``
"Torch not compiled with CUDA enabled" on a CPU build of torch).
"""

from __future__ import annotations

import torch

from mlff_distiller.errors import InputError


def torch_device(device: str | torch.device, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` this process can use.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        name: how the input is called in the error message (``--device``, ``device``).

    Raises:
        InputError: not a device string; a CUDA device without a usable CUDA torch, or an
            index beyond the visible GPUs; a device type other than cpu or cuda.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"{name}={device!r} is not a torch device (expected 'cpu', 'cuda' "
                         "or 'cuda:N')") from exc
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise InputError(f"{name}={device!r}: only 'cpu' and 'cuda' devices are supported")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build"
        raise InputError(f"{name}={device!r}: torch {torch.__version__} ({build}) sees no "
                         "CUDA device here; use 'cpu', or run on a machine with an NVIDIA GPU "
                         "and a CUDA build of torch")
    count = torch.cuda.device_count()
    if resolved.index is not None and resolved.index >= count:
        raise InputError(f"{name}={device!r}: only {count} CUDA device(s) visible "
                         f"(cuda:0 to cuda:{count - 1}; CUDA_VISIBLE_DEVICES narrows them)")
    return resolved


__all__ = ["torch_device"]
