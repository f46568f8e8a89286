"""Pretrained students shipped inside the package, loadable offline by name.

``load_student("sevennet-organic-tiny")`` resolves a zoo name to its file under
``mlff_distiller/resources/zoo/``. Each was produced by ``mlffd distill
configs/organic.yaml`` and released with ``mlffd zoo release runs/organic``
(:mod:`mlff_distiller.report.zoo_release`); the command and its hold-out metrics are in the
checkpoint's metadata and in ``docs/zoo.md``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

ZOO: dict[str, str] = {
    "sevennet-organic-original": "sevennet-organic-original.safetensors",
    "sevennet-organic-tiny": "sevennet-organic-tiny.safetensors",
    "sevennet-organic-ultra-tiny": "sevennet-organic-ultra-tiny.safetensors",
}


def zoo_dir() -> Path:
    """The folder of the packaged zoo files (``mlff_distiller/resources/zoo``)."""
    return Path(str(files("mlff_distiller") / "resources" / "zoo"))


def zoo_path(name: str) -> Path | None:
    """The packaged file of zoo student ``name``, or ``None`` if ``name`` is not a zoo name
    or its file is not shipped in this installation."""
    if name not in ZOO:
        return None
    path = zoo_dir() / ZOO[name]
    return path if path.is_file() else None


def available() -> list[str]:
    """Zoo names whose files are shipped in this installation."""
    return [name for name in ZOO if zoo_path(name) is not None]
