"""Cheap teachers and structures for data tests (importable by worker processes)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule

from mlff_distiller.teachers.base import Labels, Teacher


class EMTTeacher(Teacher):
    """ASE's EMT as a teacher: deterministic, fast, supports H C N O and a few metals."""

    name = "test:emt"
    version = "1"
    supported_elements = frozenset({1, 6, 7, 8, 13, 28, 29, 46, 47, 78, 79})

    def calculator(self):
        from ase.calculators.emt import EMT

        return EMT()


class FlakyTeacher(EMTTeacher):
    """EMT that fails on structures whose ``info['fail']`` is set (a teacher exception)."""

    name = "test:flaky"

    def label_one(self, atoms: Atoms) -> Labels:
        if atoms.info.get("fail"):
            raise RuntimeError("SCF did not converge")
        return super().label_one(atoms)


def small_pool(n: int = 12, seed: int = 0, periodic: int = 0) -> list[Atoms]:
    """Rattled small molecules (and ``periodic`` bulk Cu cells), ids in ``info``."""
    rng = np.random.default_rng(seed)
    names = ["H2O", "CH4", "NH3", "CO2"]
    out = []
    for k in range(n):
        mol = k % len(names)
        atoms = molecule(names[mol])
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.info["molecule_id"] = mol
        out.append(atoms)
    for k in range(periodic):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.info["molecule_id"] = 100 + k
        out.append(atoms)
    return out


class SlowTeacher(EMTTeacher):
    """EMT taking ``delay`` seconds per structure, so a test can kill a run mid-way."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay

    def label_one(self, atoms: Atoms) -> Labels:
        import time

        time.sleep(self.delay)
        return super().label_one(atoms)


def write_pool(path, structures) -> str:
    import ase.io

    ase.io.write(path, structures, format="extxyz")
    return str(path)
