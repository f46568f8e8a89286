"""mlff-distiller: distil foundation force fields into small, fast PaiNN students.

The public names below are imported on first use, so ``import mlff_distiller`` (and the
``mlffd`` command line) start without loading torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from mlff_distiller.errors import InputError

#: public name -> module that defines it
_LAZY = {
    "load_student": "mlff_distiller.models.checkpoint",
    "save_student": "mlff_distiller.models.checkpoint",
    "PRESETS": "mlff_distiller.models.presets",
    "build_student": "mlff_distiller.models.presets",
    "StudentCalculator": "mlff_distiller.md.calculator",
    "StudentVerlet": "mlff_distiller.md.verlet",
    "StudentLangevin": "mlff_distiller.md.langevin",
}

__all__ = ["InputError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlff_distiller' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
