"""mlff-distiller: distil foundation force fields into small, fast PaiNN students."""

from __future__ import annotations

__version__ = "0.1.0"

from mlff_distiller.errors import InputError
from mlff_distiller.models.checkpoint import load_student, save_student
from mlff_distiller.models.presets import PRESETS, build_student

__all__ = [
    "InputError",
    "PRESETS",
    "StudentCalculator",
    "__version__",
    "build_student",
    "load_student",
    "save_student",
]


def __getattr__(name: str):
    # The calculator pulls in ASE's calculator machinery; import it on first use.
    if name == "StudentCalculator":
        from mlff_distiller.md.calculator import StudentCalculator

        return StudentCalculator
    raise AttributeError(name)
