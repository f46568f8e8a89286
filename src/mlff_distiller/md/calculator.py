"""ASE calculator for students, following ASE's calculator contract."""

from __future__ import annotations

import os

import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlff_distiller import keys
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.errors import InputError
from mlff_distiller.models.forces import ForceField


class StudentCalculator(Calculator):
    """Energy (eV), forces (eV/Å) and, for periodic cells, stress (Voigt, eV/Å^3).

    Args:
        model_or_path: a student (``ForceField``) or the path of a saved checkpoint.
        device: torch device for the model.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self, model_or_path: ForceField | str | os.PathLike, device: str = "cpu", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(model_or_path, ForceField):
            model = model_or_path
        elif isinstance(model_or_path, (str, os.PathLike)):
            from mlff_distiller.models.checkpoint import load_student

            model = load_student(model_or_path)
        else:
            raise InputError(
                "StudentCalculator expects a student model or a checkpoint path, got "
                f"{type(model_or_path).__name__}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                f"stress needs a fully periodic cell; this structure has pbc={atoms.pbc.tolist()}"
            )
        graph = atoms_to_graph(atoms, self.model.cutoff, dtype=self.dtype,
                               elements=self.model.elements)
        graph = {k: v.to(self.device) for k, v in graph.items()}
        out = self.model(graph, compute_forces=True, compute_stress=bool(atoms.pbc.all()))
        energy = float(out[keys.ENERGY].detach().cpu().double()[0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = out[keys.FORCES].detach().cpu().double().numpy()
        if keys.STRESS in out:
            stress = out[keys.STRESS].detach().cpu().double().numpy()[0]
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        elif "stress" in self.results:
            del self.results["stress"]


__all__ = ["StudentCalculator"]
