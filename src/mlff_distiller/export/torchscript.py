"""TorchScript export: ``torch.jit.script`` keeps ``torch.autograd.grad`` (trace does not)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch

from mlff_distiller.devices import torch_device
from mlff_distiller.errors import InputError
from mlff_distiller.export.core import ExportableStudent, LoadedExport, with_scriptable_torch
from mlff_distiller.fileio import atomic_path
from mlff_distiller.models.forces import ForceField

METADATA_FILE = "mlff_distiller.json"


@with_scriptable_torch
def save_torchscript(
    student: ForceField, path: str | os.PathLike, metadata: dict[str, Any]
) -> Path:
    """Script the student (energy, forces, stress) and save it with its metadata inside."""
    module = torch.jit.script(ExportableStudent(copy.deepcopy(student).eval()))
    with atomic_path(path) as tmp:
        torch.jit.save(module, str(tmp), _extra_files={METADATA_FILE: json.dumps(metadata)})
    return Path(path)


def load_torchscript(path: str | os.PathLike, device: str = "cpu") -> LoadedExport:
    """Load a file written by :func:`save_torchscript`."""
    device = torch_device(device)
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable TorchScript export ({exc})") from None
    if not extra[METADATA_FILE]:
        raise InputError(f"{path}: TorchScript file without mlff-distiller metadata")
    metadata = json.loads(extra[METADATA_FILE])

    def run(*args):
        return module(*(a.to(device) for a in args))

    return LoadedExport(run=run, metadata=metadata)


__all__ = ["load_torchscript", "save_torchscript"]
