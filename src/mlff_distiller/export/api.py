"""``export_student`` / ``load_export``: the one entry point per direction for every format."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path
from typing import Any

from mlff_distiller.errors import InputError
from mlff_distiller.export.core import LoadedExport, check_parity, export_metadata
from mlff_distiller.fileio import write_json
from mlff_distiller.models.forces import ForceField

FORMATS = ("torchscript", "onnx", "aoti", "metatomic")
SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx", "aoti": ".pt2", "metatomic": ".pt"}


def resolve_student(student: ForceField | str | os.PathLike) -> ForceField:
    """A student model from a model or a checkpoint path, in eval mode."""
    if isinstance(student, ForceField):
        return student.eval()
    if isinstance(student, (str, os.PathLike)):
        from mlff_distiller.models.checkpoint import load_student

        return load_student(student)
    raise InputError(f"expected a student or a checkpoint path, got {type(student).__name__}")


def check_format(fmt: str) -> str:
    key = fmt.strip().lower()
    if key not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    return key


# Top-level Python packages each format needs, and the extra that installs them.
FORMAT_PACKAGES = {"onnx": (("onnx", "onnxruntime", "onnxscript"), "export"),
                   "metatomic": (("metatomic",), "metatomic")}


def check_format_dependencies(fmt: str) -> None:
    """Raise a clear error (naming the extra to install) when ``fmt`` cannot be written here.

    ``mlffd distill`` calls it before any stage runs, so a missing package is reported at
    the start rather than after hours of training. Packages are looked up, not imported
    (importing metatomic has side effects the metatomic export manages itself).
    """
    import importlib.util

    modules, extra = FORMAT_PACKAGES.get(check_format(fmt), ((), ""))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(
            f"the {fmt} export needs the Python package(s) {missing}, which are not "
            f"installed. Install them with: pip install 'mlff-distiller[{extra}]' "
            "-c constraints.txt, or drop the format from the export formats")


def parity_path(out_path: str | os.PathLike) -> Path:
    """Where the parity report of an export lives: ``<export>.json``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".json")


def export_student(
    student: ForceField | str | os.PathLike,
    fmt: str,
    out_path: str | os.PathLike,
    check: bool = True,
) -> dict[str, Any]:
    """Export a student (energy, forces, stress) and check it against the eager model.

    Args:
        student: a student model or a checkpoint path.
        fmt: ``torchscript`` | ``onnx`` | ``aoti`` | ``metatomic``.
        out_path: the export file (``.ts`` / ``.onnx`` / ``.pt2`` / ``.pt``).
        check: reload the written file and compare with the eager student on a molecule,
            a periodic cell, a single atom and a batch of them.

    Returns:
        ``{format, path, report, file_size_bytes, export_seconds, metadata, parity}``;
        ``parity`` (max |ΔE|, |ΔF|, |Δσ| per case, ``passed``) is also written to
        ``<out_path>.json``.
    """
    fmt = check_format(fmt)
    check_format_dependencies(fmt)
    model = resolve_student(student)
    out_path = Path(out_path)
    metadata = export_metadata(model, fmt)
    saver = _savers()[fmt]
    start = time.perf_counter()
    saver(model, out_path, metadata)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "format": fmt,
        "path": str(out_path),
        "report": str(parity_path(out_path)),
        "file_size_bytes": out_path.stat().st_size,
        "export_seconds": seconds,
        "metadata": metadata,
        "parity": None,
    }
    if check:
        loaded = load_export(out_path, fmt=fmt)
        result["parity"] = check_parity(model, loaded.predict)
    write_json(parity_path(out_path), result)
    return result


def load_export(
    path: str | os.PathLike, fmt: str | None = None, threads: int = 1
) -> LoadedExport:
    """Load any export written by :func:`export_student` (format from the file when omitted)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"export {str(path)!r} does not exist or is not a file")
    fmt = check_format(fmt) if fmt else detect_format(path)
    if fmt == "onnx":
        from mlff_distiller.export.onnx import load_onnx

        return load_onnx(path, threads=threads)
    if fmt == "aoti":
        from mlff_distiller.export.aoti import load_aoti

        return load_aoti(path)
    if fmt == "metatomic":
        from mlff_distiller.export.metatomic import load_metatomic

        return load_metatomic(path)
    from mlff_distiller.export.torchscript import load_torchscript

    return load_torchscript(path)


def detect_format(path: Path) -> str:
    """The export format of ``path`` from its suffix and, for zip archives, its contents."""
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix == ".pt2":
        return "aoti"
    if zipfile.is_zipfile(path):
        from mlff_distiller.export.torchscript import METADATA_FILE

        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("extra/" + METADATA_FILE) for name in archive.namelist()):
                return "torchscript"
        return "metatomic"
    raise InputError(
        f"{path}: cannot tell the export format; expected .onnx, .pt2, or a TorchScript / "
        "metatomic .pt/.ts archive written by `mlffd export`"
    )


def _savers() -> dict:
    from mlff_distiller.export.aoti import save_aoti
    from mlff_distiller.export.metatomic import save_metatomic
    from mlff_distiller.export.onnx import save_onnx
    from mlff_distiller.export.torchscript import save_torchscript

    return {
        "torchscript": save_torchscript,
        "onnx": save_onnx,
        "aoti": save_aoti,
        "metatomic": save_metatomic,
    }



__all__ = ["FORMATS", "detect_format", "export_student", "load_export", "parity_path"]
