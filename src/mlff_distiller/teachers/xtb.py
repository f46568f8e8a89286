"""GFN2-xTB teacher through tblite's ASE calculator (no weights; fast; molecular).

tblite works internally in Hartree and Bohr; its ASE calculator (``tblite.ase.TBLite``)
already converts to eV and eV/Å, so labels need no further conversion.
"""

from __future__ import annotations

from mlff_distiller.errors import InputError
from mlff_distiller.teachers.base import Teacher, package_version, require

#: GFN2-xTB is parametrised for H to Rn
GFN2_ELEMENTS = frozenset(range(1, 87))


class XTBTeacher(Teacher):
    """GFN-xTB via ``tblite``.

    A fresh calculator per structure, so that the SCF never restarts from the previous
    structure's wavefunction and labels do not depend on the order of labeling.

    Args:
        method: ``GFN2-xTB`` (default) or ``GFN1-xTB``.
        accuracy: tblite's numerical accuracy (smaller is tighter).
        electronic_temperature: Fermi smearing temperature, K.
    """

    def __init__(self, method: str = "GFN2-xTB", accuracy: float = 1.0,
                 electronic_temperature: float = 300.0) -> None:
        require("tblite.ase", "xtb", "the xTB teacher")
        if method not in ("GFN2-xTB", "GFN1-xTB"):
            raise InputError(f"xtb method {method!r} is not one of 'GFN2-xTB', 'GFN1-xTB'")
        self.method = method
        self.accuracy = accuracy
        self.electronic_temperature = electronic_temperature
        self.name = f"xtb:{method}"
        self.version = package_version("tblite")
        self.supported_elements = GFN2_ELEMENTS

    def calculator(self):
        """A new ``tblite.ase.TBLite`` calculator (quiet), energies in eV, forces in eV/Å."""
        from tblite.ase import TBLite

        return TBLite(method=self.method, accuracy=self.accuracy,
                      electronic_temperature=self.electronic_temperature, verbosity=0)
