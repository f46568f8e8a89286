"""On-disk cache of the AOTInductor programs that ``compile=True`` builds.

Building a student's energy + forces program takes 15-30 s (export, then C++ compilation);
loading a built one takes a fraction of a second. Programs are kept in
``$XDG_CACHE_HOME/mlff-distiller/programs`` (``~/.cache/...`` without it), or in the folder
named by ``MLFFD_PROGRAM_CACHE``; ``MLFFD_PROGRAM_CACHE=off`` turns the cache off.

A program is found again only under the same key, the SHA-256 of everything it was built
from: every weight and buffer of the frozen model (bytes, dtype, shape), the source of the
modules that define the computation, the torch and mlff-distiller versions, the CPU's
architecture and the vector instruction set Inductor compiled for (a program built with
AVX-512 must not be loaded on an AVX2 node sharing the home folder), dtype, device, the
periodic flag and the compiler options. Files are written atomically; one that fails to
load is rebuilt and replaced. The cache holds only programs this module built; it loads
compiled code from that folder, so keep it private to the user (it is created 0700).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import torch
from torch import nn

CACHE_ENV = "MLFFD_PROGRAM_CACHE"
MAX_PROGRAMS = 32  # oldest files beyond this many are removed after each write

# the modules whose code is traced into the program
_SOURCE_MODULES = (
    "mlff_distiller.models.painn",
    "mlff_distiller.models.forces",
    "mlff_distiller.models.tracing",
    "mlff_distiller.md.fast",
    "mlff_distiller.md.bias_adds",
)


def cache_dir() -> Path | None:
    """The cache folder, or None when ``MLFFD_PROGRAM_CACHE=off`` (or no home folder exists)."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home folder to be found: no cache
            return None
    return Path(base) / "mlff-distiller" / "programs"


def program_key(model: nn.Module, periodic: bool, like: torch.Tensor,
                inductor_configs: dict) -> str:
    """Hex SHA-256 naming the program built from ``model`` (its state dict) for inputs of
    ``like``'s dtype and device, molecules or periodic cells, with ``inductor_configs``."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    import mlff_distiller

    digest = hashlib.sha256()
    header = {
        "torch": torch.__version__, "mlff_distiller": mlff_distiller.__version__,
        "machine": platform.machine(), "vec_isa": str(pick_vec_isa()),
        "dtype": str(like.dtype), "device": str(like.device), "periodic": bool(periodic),
        "inductor_configs": inductor_configs,
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for name in _SOURCE_MODULES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached_program(key: str) -> Path | None:
    """The cached package of ``key``, if there is one."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{key}.pt2"
    return path if path.is_file() else None


def store_program(key: str, package: Path) -> Path | None:
    """Copy a built ``package`` into the cache atomically; None (and a warning on stderr)
    when the cache is off or cannot be written, which only costs a rebuild next time."""
    from mlff_distiller.fileio import atomic_path

    folder = cache_dir()
    if folder is None:
        return None
    target = folder / f"{key}.pt2"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with atomic_path(target) as tmp:
            shutil.copyfile(package, tmp)
        _prune(folder)
    except OSError as exc:
        print(f"mlff-distiller: could not cache the compiled program in {folder} ({exc}); "
              f"it will be rebuilt next time (set {CACHE_ENV} to a writable folder, or "
              f"{CACHE_ENV}=off)", file=sys.stderr)
        return None
    return target


def _prune(folder: Path) -> None:
    """Remove the least recently written programs beyond :data:`MAX_PROGRAMS`."""
    programs = sorted(folder.glob("*.pt2"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in programs[MAX_PROGRAMS:]:
        old.unlink(missing_ok=True)


__all__ = ["CACHE_ENV", "MAX_PROGRAMS", "cache_dir", "cached_program", "program_key",
           "store_program"]
