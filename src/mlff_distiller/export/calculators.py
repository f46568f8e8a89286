"""ASE calculators for exported students: the same contract as ``StudentCalculator``.

The neighbour list is built here (``data.graph.atoms_to_graph``, the model's cutoff from the
export's metadata); the export computes energy, forces and stress.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlff_distiller import keys
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.export.core import LoadedExport


class ExportCalculator(Calculator):
    """Energy (eV), forces (eV/Å), stress (Voigt, eV/Å^3, periodic only) from an export.

    Args:
        export: a loaded export or the path of one (``.ts``/``.onnx``/``.pt2``/metatomic
            ``.pt``; see :func:`export.api.load_export`).
        threads: onnxruntime intra-op threads (ONNX only).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self, export: LoadedExport | str | os.PathLike, threads: int = 1, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(export, LoadedExport):
            from mlff_distiller.export.api import load_export

            export = load_export(export, threads=threads)
        self.export = export
        self.cutoff = float(export.metadata["cutoff"])
        self.elements = [int(z) for z in export.metadata["elements"]]
        self.dtype = getattr(torch, export.metadata.get("dtype", "float32"))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if "stress" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                f"stress needs a fully periodic cell; this structure has pbc={atoms.pbc.tolist()}"
            )
        graph = atoms_to_graph(atoms, self.cutoff, dtype=self.dtype, elements=self.elements)
        out = self.export.predict(graph)
        energy = float(np.asarray(out[keys.ENERGY].detach().double())[0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = out[keys.FORCES].detach().double().numpy()
        if atoms.pbc.all():
            stress = out[keys.STRESS].detach().double().numpy()[0]
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        elif "stress" in self.results:
            del self.results["stress"]


class OnnxCalculator(ExportCalculator):
    """:class:`ExportCalculator` for an ONNX export; ``threads`` onnxruntime threads."""

    def __init__(self, path: str | os.PathLike, threads: int = 1, **kwargs) -> None:
        from mlff_distiller.export.onnx import load_onnx

        super().__init__(load_onnx(path, threads=threads), **kwargs)


__all__ = ["ExportCalculator", "OnnxCalculator"]
