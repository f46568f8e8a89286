"""metatomic export: one TorchScript file for LAMMPS (``pair_style metatomic``), ASE, i-PI.

The wrapped student predicts the energy; the engine (LAMMPS, metatomic's ASE calculator)
takes forces and virial by autograd through metatomic's neighbour vectors. Needs the
``metatomic`` extra (``pip install -c constraints.txt 'mlff-distiller[metatomic]'``).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mlff_distiller import keys
from mlff_distiller.errors import InputError
from mlff_distiller.export.core import LoadedExport, with_scriptable_torch
from mlff_distiller.fileio import atomic_path
from mlff_distiller.models.forces import ForceField

METADATA_KEY = "mlff_distiller"


@with_scriptable_torch
def _require():
    try:
        import metatensor.torch as mts
        import metatomic.torch as mta
    except ImportError:
        raise InputError(
            "the metatomic export needs metatomic-torch: "
            "pip install -c constraints.txt 'mlff-distiller[metatomic]'"
        ) from None
    return mts, mta


@with_scriptable_torch
def to_atomistic_model(student: ForceField, metadata: dict[str, Any]):
    """The student as a ``metatomic.torch.AtomisticModel`` (energy in eV, lengths in Å)."""
    _, mta = _require()
    energy_model = copy.deepcopy(student.energy_model).eval()
    from mlff_distiller.export.metatomic_module import MetatomicStudent

    module = MetatomicStudent(energy_model, float(student.cutoff)).eval()
    dtype = str(next(student.parameters()).dtype).removeprefix("torch.")
    capabilities = mta.ModelCapabilities(
        outputs={"energy": mta.ModelOutput(unit="eV", sample_kind="system")},
        atomic_types=[int(z) for z in student.elements],
        interaction_range=float(student.cutoff),
        length_unit="angstrom",
        supported_devices=["cpu", "cuda"],
        dtype=dtype,
    )
    info = mta.ModelMetadata(
        name=f"mlff-distiller PaiNN student ({metadata.get('preset', 'custom')})",
        description=f"PaiNN student distilled from {metadata.get('teacher') or 'a teacher'}",
        extra={METADATA_KEY: json.dumps(metadata)},
    )
    return mta.AtomisticModel(module, info, capabilities)


@with_scriptable_torch
def save_metatomic(student: ForceField, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write the student as a metatomic model file (``.pt``) for LAMMPS / ASE / i-PI."""
    model = to_atomistic_model(student, metadata)
    with atomic_path(path) as tmp:
        model.save(str(tmp))
    return Path(path)


@with_scriptable_torch
def load_metatomic(path: str | os.PathLike) -> LoadedExport:
    """Load a metatomic model; ``predict`` runs it through metatomic's own ASE calculator."""
    _, mta = _require()
    from metatomic_ase import MetatomicCalculator

    try:
        model = mta.load_atomistic_model(str(path))
    except Exception as exc:  # metatomic raises RuntimeError / ValueError
        raise InputError(f"{path}: not a readable metatomic model ({exc})") from None
    stored = model.metadata().extra.get(METADATA_KEY)
    if stored is None:
        raise InputError(f"{path}: metatomic model without mlff-distiller metadata")
    calculator = MetatomicCalculator(model, device="cpu")

    def predict(graph: dict[str, Tensor]) -> dict[str, Tensor]:
        return _predict_with_calculator(calculator, graph)

    return LoadedExport(run=predict, metadata=json.loads(stored), graph_input=True)


def _predict_with_calculator(calculator, graph: dict[str, Tensor]) -> dict[str, Tensor]:
    """Run an ASE calculator on each structure of a flat graph; stack the results."""
    from ase import Atoms
    from ase.stress import voigt_6_to_full_3x3_stress

    energies, forces, stresses = [], [], []
    batch = graph[keys.BATCH]
    for k in range(graph[keys.CELL].shape[0]):
        mask = batch == k
        atoms = Atoms(
            numbers=graph[keys.ATOMIC_NUMBERS][mask].numpy(),
            positions=graph[keys.POSITIONS][mask].double().numpy(),
            cell=graph[keys.CELL][k].double().numpy(),
            pbc=graph[keys.PBC][k].numpy(),
        )
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
        forces.append(torch.as_tensor(atoms.get_forces()))
        stress = torch.zeros(3, 3, dtype=torch.float64)
        if atoms.pbc.all():
            stress = torch.as_tensor(voigt_6_to_full_3x3_stress(atoms.get_stress()))
        stresses.append(stress)
    return {
        keys.ENERGY: torch.tensor(energies, dtype=torch.float64),
        keys.FORCES: torch.cat(forces),
        keys.STRESS: torch.stack(stresses),
    }


__all__ = ["load_metatomic", "save_metatomic", "to_atomistic_model"]
