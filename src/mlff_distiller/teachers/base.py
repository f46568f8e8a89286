"""The one small interface every teacher implements.

A teacher labels a list of structures with energy (eV), forces (eV/Å), stress (3x3,
eV/Å^3, ASE sign convention) when periodic, and optionally a few rows of the Hessian
(d^2E / dx_a dx_b, eV/Å^2) used for Hessian distillation. A structure the teacher fails on
is returned as a :class:`LabelFailure` with the reason, never raised, so one bad structure
does not stop a labeling job.

Adapters live in sibling modules, one per package, and import that package behind a guard
(:func:`require`) whose error names the extra to install.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mlff_distiller.errors import InputError


@dataclass
class Labels:
    """Teacher labels of one structure of ``n`` atoms."""

    energy: float  # eV
    forces: np.ndarray  # (n, 3) eV/Å
    stress: np.ndarray | None = None  # (3, 3) eV/Å^3, periodic structures only
    hessian_rows: np.ndarray | None = None  # (k, 3n) eV/Å^2, rows of d^2E/dx dx
    hessian_row_index: np.ndarray | None = None  # (k,) int, flat coordinate 3 * atom + axis


@dataclass
class LabelFailure:
    """A structure the teacher could not label, and why."""

    reason: str


class Teacher(abc.ABC):
    """Labels structures. Subclasses set ``name`` (e.g. ``"sevennet:7net-0"``) and
    ``version`` (the package version), and implement :meth:`calculator`."""

    name: str = "teacher"
    version: str = "unknown"
    #: atomic numbers the teacher supports; ``None`` means "any"
    supported_elements: frozenset[int] | None = None

    @abc.abstractmethod
    def calculator(self):
        """An ASE calculator evaluating this teacher (used for labels and teacher MD)."""

    def check_elements(self, structures: Sequence[Atoms]) -> None:
        """Refuse, before any work, structures with elements the teacher does not support."""
        if self.supported_elements is None:
            return
        present = set()
        for atoms in structures:
            present.update(int(z) for z in atoms.numbers)
        unsupported = sorted(present - set(self.supported_elements))
        if unsupported:
            from ase.data import chemical_symbols

            raise InputError(
                f"teacher {self.name} does not support element(s) "
                f"{[chemical_symbols[z] for z in unsupported]}; remove those structures or "
                "choose a teacher that covers them"
            )

    def label(
        self,
        structures: Sequence[Atoms],
        hessian_rows: int = 0,
        seed: int = 0,
    ) -> list[Labels | LabelFailure]:
        """Label each structure; failures are returned, not raised.

        Args:
            structures: ASE structures.
            hessian_rows: number of randomly chosen Hessian rows per structure (0 = none).
            seed: seeds the choice of Hessian rows (per structure: ``seed + position``).
        """
        results: list[Labels | LabelFailure] = []
        for k, atoms in enumerate(structures):
            if not np.all(np.isfinite(atoms.positions)):
                # some teachers silently drop such atoms from the neighbour graph
                results.append(LabelFailure("non-finite positions"))
                continue
            try:
                labels = self.label_one(atoms)
                if hessian_rows > 0:
                    rng = np.random.default_rng(seed + k)
                    n_coords = 3 * len(atoms)
                    index = np.sort(rng.choice(n_coords, min(hessian_rows, n_coords),
                                               replace=False))
                    labels.hessian_row_index = index
                    labels.hessian_rows = self.hessian_rows(atoms, index)
                results.append(_checked(labels, len(atoms)))
            except Exception as exc:  # noqa: BLE001 - any teacher failure is recorded
                results.append(LabelFailure(f"{type(exc).__name__}: {exc}"))
        return results

    def label_one(self, atoms: Atoms) -> Labels:
        """Labels of one structure through the ASE calculator."""
        atoms = atoms.copy()
        atoms.calc = self.calculator()
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=np.float64)
        stress = None
        if atoms.pbc.all():
            stress = np.asarray(atoms.get_stress(voigt=False), dtype=np.float64)
        return Labels(energy=energy, forces=forces, stress=stress)

    def hessian_rows(self, atoms: Atoms, index: np.ndarray, delta: float = 1e-3) -> np.ndarray:
        """Rows ``index`` of the Hessian (k, 3n) in eV/Å^2 by central differences of forces.

        H[3a+i, :] = -(F(x + delta e_ai) - F(x - delta e_ai)) / (2 delta). Torch teachers
        override this with autograd.
        """
        rows = np.zeros((len(index), 3 * len(atoms)))
        calc = self.calculator()
        for r, flat in enumerate(index):
            atom, axis = divmod(int(flat), 3)
            forces = []
            for sign in (1.0, -1.0):
                displaced = atoms.copy()
                displaced.positions[atom, axis] += sign * delta
                displaced.calc = calc
                forces.append(np.asarray(displaced.get_forces(), dtype=np.float64))
            rows[r] = -(forces[0] - forces[1]).reshape(-1) / (2 * delta)
        return rows


def _checked(labels: Labels, n_atoms: int) -> Labels | LabelFailure:
    if not np.isfinite(labels.energy):
        return LabelFailure(f"non-finite energy {labels.energy}")
    if labels.forces.shape != (n_atoms, 3):
        return LabelFailure(f"forces of shape {labels.forces.shape}, expected ({n_atoms}, 3)")
    if not np.all(np.isfinite(labels.forces)):
        return LabelFailure("non-finite forces")
    if labels.stress is not None and not np.all(np.isfinite(labels.stress)):
        return LabelFailure("non-finite stress")
    if labels.hessian_rows is not None and not np.all(np.isfinite(labels.hessian_rows)):
        return LabelFailure("non-finite Hessian rows")
    return labels


def require(module: str, extra: str, purpose: str, hint: str = ""):
    """Import ``module`` or raise an error naming the extra that provides it.

    ``hint`` is appended to the error (e.g. an extra installation step).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            f"{purpose} needs the Python package '{module}', which is not installed ({exc}). "
            f"Install it with: pip install 'mlff-distiller[{extra}]' -c constraints.txt"
            + (f" {hint}" if hint else "")
        ) from None


def package_version(distribution: str) -> str:
    """Installed version of a distribution (e.g. ``"tblite"``), or ``"unknown"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
