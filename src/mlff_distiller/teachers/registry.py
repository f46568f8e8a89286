"""Teacher specs -> teacher objects: an explicit table, no decorators.

Specs (the ``--teacher`` option):

==============================  =====================================================
``sevennet`` / ``sevennet:NAME``  SevenNet (default ``7net-0``, bundled weights); NAME may be a
                                  sevenn pretrained name or a checkpoint path
``xtb`` / ``xtb:GFN1-xTB``        GFN2-xTB (default) or GFN1-xTB via tblite
``orb`` / ``orb:NAME``            orb-models (default ``orb-v3-conservative-inf-omat``);
                                  ``weights=PATH`` for offline use
``mace:PATH``                     a MACE model file
``ase:package.module:factory``    ``factory()`` from an importable module returns a calculator
==============================  =====================================================
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from mlff_distiller.errors import InputError
from mlff_distiller.teachers.base import Teacher


def _sevennet(arg: str | None, weights: str | None, device: str) -> Teacher:
    from mlff_distiller.teachers.sevennet import DEFAULT_MODEL, SevenNetTeacher

    return SevenNetTeacher(model=weights or arg or DEFAULT_MODEL, device=device)


def _xtb(arg: str | None, weights: str | None, device: str) -> Teacher:
    from mlff_distiller.teachers.xtb import XTBTeacher

    _no_weights("xtb", weights)
    return XTBTeacher(method=arg or "GFN2-xTB")


def _orb(arg: str | None, weights: str | None, device: str) -> Teacher:
    from mlff_distiller.teachers.orb import DEFAULT_MODEL, OrbTeacher

    return OrbTeacher(model=arg or DEFAULT_MODEL, weights=weights, device=device)


def _mace(arg: str | None, weights: str | None, device: str) -> Teacher:
    from mlff_distiller.teachers.mace import MACETeacher

    path = weights or arg
    if not path:
        raise InputError("teacher 'mace' needs a model file: --teacher mace:PATH "
                         "(or --teacher mace --teacher-weights PATH)")
    return MACETeacher(path, device=device)


def _ase(arg: str | None, weights: str | None, device: str) -> Teacher:
    from mlff_distiller.teachers.ase_factory import AseTeacher

    _no_weights("ase", weights)
    if not arg:
        raise InputError("teacher 'ase' needs a factory: --teacher ase:package.module:factory")
    return AseTeacher(arg)


#: name -> (constructor(arg, weights, device), extra, module whose presence means installed)
TEACHERS: dict[str, tuple[Callable[[str | None, str | None, str], Teacher], str, str]] = {
    "sevennet": (_sevennet, "sevennet", "sevenn"),
    "xtb": (_xtb, "xtb", "tblite"),
    "orb": (_orb, "orb", "orb_models"),
    "mace": (_mace, "mace", "mace"),
    "ase": (_ase, "", "ase"),
}


def load_teacher(spec: str, weights: str | None = None, device: str = "cpu") -> Teacher:
    """Build the teacher a spec names.

    Args:
        spec: ``name`` or ``name:argument`` (see the module docstring), e.g. ``sevennet``,
            ``xtb``, ``orb:orb-v3-direct-20-omat``, ``mace:model.model``,
            ``ase:ase.calculators.emt:EMT``.
        weights: local weights/model file for teachers that take one (orb, mace, sevennet).
        device: torch device for torch-based teachers.

    Raises:
        InputError: unknown name, malformed spec, missing package (naming the extra),
            missing weights file.
    """
    name, _, arg = spec.strip().partition(":")
    name = name.lower()
    if name not in TEACHERS:
        raise InputError(f"unknown teacher {spec!r}; choose one of {', '.join(TEACHERS)} "
                         "(e.g. --teacher sevennet, --teacher mace:PATH, "
                         "--teacher ase:package.module:factory)")
    constructor = TEACHERS[name][0]
    from mlff_distiller.devices import torch_device

    torch_device(device)  # a device this process cannot use fails here, naming it
    return constructor(arg or None, weights, device)


def available_teachers() -> list[dict]:
    """One row per adapter: name, extra to install, and whether its package is importable."""
    rows = []
    for name, (_, extra, module) in TEACHERS.items():
        rows.append({"name": name, "extra": extra or None,
                     "installed": importlib.util.find_spec(module) is not None})
    return rows


def _no_weights(name: str, weights: str | None) -> None:
    if weights is not None:
        raise InputError(f"teacher {name!r} takes no weights file, got --teacher-weights {weights}")
