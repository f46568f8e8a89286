"""AOTInductor export: the traced force program compiled to a ``.pt2`` package (C++ kernels).

Compiling needs a C++ compiler and takes tens of seconds; loading and running do not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlff_distiller.errors import InputError
from mlff_distiller.export.core import LoadedExport
from mlff_distiller.export.trace import trace_student
from mlff_distiller.fileio import atomic_path
from mlff_distiller.models.forces import ForceField

METADATA_KEY = "mlff_distiller"


def save_aoti(student: ForceField, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Compile the student with AOTInductor into a ``.pt2`` package carrying its metadata."""
    from torch._inductor import aoti_compile_and_package

    program = trace_student(student)
    path = Path(path)
    if path.suffix != ".pt2":
        raise InputError(f"AOTInductor packages must end in .pt2, got {str(path)!r}")
    with atomic_path(path) as tmp:
        package = tmp.with_suffix(".pt2")
        aoti_compile_and_package(
            program,
            package_path=str(package),
            inductor_configs={"aot_inductor.metadata": {METADATA_KEY: json.dumps(metadata)}},
        )
        os.replace(package, tmp)
    return path


def load_aoti(path: str | os.PathLike) -> LoadedExport:
    """Load a package written by :func:`save_aoti`."""
    from torch._inductor import aoti_load_package

    try:
        runner = aoti_load_package(str(path))
    except Exception as exc:  # the loader raises RuntimeError or plain Exception
        raise InputError(f"{path}: not a readable AOTInductor package ({exc})") from None
    stored = runner.get_metadata().get(METADATA_KEY)
    if stored is None:
        raise InputError(f"{path}: AOTInductor package without mlff-distiller metadata")

    def run(*args):
        return runner(*args)

    return LoadedExport(run=run, metadata=json.loads(stored), needs_edges=True)


__all__ = ["load_aoti", "save_aoti"]
