"""SevenNet-0 teacher (the embedded default): weights ship inside the ``sevenn`` wheel.

Energies in eV, forces in eV/Å, stress in eV/Å^3 (ASE convention), as SevenNet's own ASE
calculator returns them. Hessian rows come from double backward through the model.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms

from mlff_distiller.errors import InputError
from mlff_distiller.teachers.base import Teacher, package_version, require

#: names the sevenn package accepts for its bundled pretrained models
DEFAULT_MODEL = "7net-0"


class SevenNetTeacher(Teacher):
    """SevenNet through ``sevenn.calculator.SevenNetCalculator``.

    Args:
        model: a pretrained name known to sevenn (``7net-0``, ``7net-l3i5``, ...) or a path to
            a SevenNet checkpoint.
        device: torch device string (``cpu``, ``cuda``, ``cuda:1``).
        modal: fidelity of multi-fidelity models (e.g. ``mpa`` for ``7net-mf-ompa``).
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu",
                 modal: str | None = None) -> None:
        calculator_module = require("sevenn.calculator", "sevennet", "the SevenNet teacher")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no tensor product accelerator"
            try:
                self._calc = calculator_module.SevenNetCalculator(
                    model=model, device=device, modal=modal)
            except ValueError as exc:
                raise InputError(f"SevenNet model {model!r} could not be loaded: {exc}") from None
        self.name = f"sevennet:{model}"
        self.version = package_version("sevenn")
        self.supported_elements = frozenset(int(z) for z in self._calc.type_map)
        self.cutoff = float(self._calc.cutoff)

    def calculator(self):
        """The loaded SevenNet calculator (one per teacher: loading takes seconds)."""
        return self._calc

    def hessian_rows(self, atoms: Atoms, index: np.ndarray, delta: float = 1e-3) -> np.ndarray:
        """Rows ``index`` of the Hessian (k, 3n), eV/Å^2, by double backward (``delta`` unused).

        H[3a+i, :] = -dF_flat[3a+i] / dx.
        """
        import torch

        key = require("sevenn._keys", "sevennet", "the SevenNet teacher")
        graph_data = require("sevenn.atom_graph_data", "sevennet", "the SevenNet teacher")
        dataload = require("sevenn.train.dataload", "sevennet", "the SevenNet teacher")
        model = self._calc.model
        data = graph_data.AtomGraphData.from_numpy_dict(
            dataload.unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=True))
        if self._calc.modal:
            data[key.DATA_MODALITY] = self._calc.modal
        data.to(self._calc.device)
        # SevenNet differentiates with respect to edge vectors; rebuild them from positions
        # so that forces stay a differentiable function of positions.
        positions = data[key.POS].detach().requires_grad_(True)
        src, dst = data[key.EDGE_IDX]
        shift = data[key.CELL_SHIFT].to(positions.dtype)
        cell = data[key.CELL].to(positions.dtype).view(3, 3)
        data[key.EDGE_VEC] = positions[dst] - positions[src] + shift @ cell
        force_module = model._modules["force_output"]
        was_training = force_module.training
        force_module.train(True)  # its autograd.grad uses create_graph=self.training
        try:
            output = model(data)
            forces = output[key.PRED_FORCE][: len(atoms)].reshape(-1)
            rows = np.zeros((len(index), 3 * len(atoms)))
            for r, flat in enumerate(index):
                (grad,) = torch.autograd.grad(forces[int(flat)], positions, retain_graph=True)
                rows[r] = -grad.reshape(-1).detach().double().cpu().numpy()
        finally:
            force_module.train(was_training)
        return rows
