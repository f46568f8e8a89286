"""Any ASE calculator a user can construct in Python: ``ase:package.module:factory``.

The spec names an importable module and a callable in it that returns an ASE calculator
(e.g. ``ase:ase.calculators.emt:EMT``). This is Python the user typed on the command line,
never code read from a data file.
"""

from __future__ import annotations

import importlib
import re

from mlff_distiller.errors import InputError
from mlff_distiller.teachers.base import Teacher, package_version

_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<factory>[A-Za-z_]\w*)$")


def parse_factory_spec(spec: str) -> tuple[str, str]:
    """``"package.module:factory"`` -> ``("package.module", "factory")``, validated."""
    match = _SPEC.match(spec)
    if match is None:
        raise InputError(f"ASE teacher spec {spec!r} is not of the form package.module:factory "
                         "(e.g. --teacher ase:ase.calculators.emt:EMT)")
    return match["module"], match["factory"]


class AseTeacher(Teacher):
    """Calls ``factory()`` once and uses the calculator it returns for every structure."""

    def __init__(self, spec: str) -> None:
        module_name, factory_name = parse_factory_spec(spec)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InputError(f"ASE teacher {spec!r}: cannot import module {module_name!r} "
                             f"({exc}); install the package that provides it") from None
        factory = getattr(module, factory_name, None)
        if not callable(factory):
            raise InputError(f"ASE teacher {spec!r}: module {module_name!r} has no callable "
                             f"{factory_name!r}")
        try:
            calc = factory()
        except Exception as exc:  # noqa: BLE001 - the user's factory, reported as such
            raise InputError(f"ASE teacher {spec!r}: {factory_name}() raised "
                             f"{type(exc).__name__}: {exc}; it must take no arguments and "
                             "return an ASE calculator") from None
        if not (hasattr(calc, "get_property") and hasattr(calc, "get_forces")):
            raise InputError(f"ASE teacher {spec!r}: {factory_name}() returned "
                             f"{type(calc).__name__}, not an ASE calculator")
        self._calc = calc
        self.name = f"ase:{spec}"
        self.version = package_version(module_name.split(".")[0])
        self.supported_elements = None

    def calculator(self):
        """The calculator the factory returned."""
        return self._calc
