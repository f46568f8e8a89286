"""Forces and stress from one autograd wrapper around an energy model.

F = -dE/dr;  stress = (1/V) dE/d(strain), with a symmetric strain applied to positions and
cell (ASE's sign convention). ``create_graph=self.training`` so training can backpropagate
through forces (and take Hessian rows by double backward).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mlff_distiller import keys
from mlff_distiller.models.painn import PaiNN, PaiNNConfig


class ForceField(nn.Module):
    """A student: energy model + autograd forces/stress.

    ``forward(graph)`` returns a dict with ``energy`` (B,) eV, ``forces`` (N, 3) eV/Å when
    ``compute_forces`` and ``stress`` (B, 3, 3) eV/Å^3 when ``compute_stress``.
    """

    # plain-Python conveniences; TorchScript exports (torch.jit.script) must skip them
    __jit_unused_properties__ = ["config", "cutoff", "elements"]

    def __init__(self, energy_model: PaiNN) -> None:
        super().__init__()
        self.energy_model = energy_model

    @property
    def config(self) -> PaiNNConfig:
        return self.energy_model.config

    @property
    def cutoff(self) -> float:
        return self.energy_model.cutoff

    @property
    def elements(self) -> tuple[int, ...]:
        return self.energy_model.config.elements

    def forward(
        self,
        graph: dict[str, Tensor],
        compute_forces: bool = True,
        compute_stress: bool = False,
    ) -> dict[str, Tensor]:
        positions = graph[keys.POSITIONS]
        cell = graph[keys.CELL]
        unstrained_cell = cell
        inputs: list[Tensor] = []
        if compute_forces or compute_stress:
            if not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            inputs.append(positions)
        graph = dict(graph)
        if compute_stress:
            # E(strained) with r -> r (1 + eps), cell -> cell (1 + eps), eps symmetric
            displacement = torch.zeros_like(cell).requires_grad_(True)
            strain = 0.5 * (displacement + displacement.transpose(1, 2))
            positions = positions + torch.bmm(
                positions.unsqueeze(1), strain[graph[keys.BATCH]]
            ).squeeze(1)
            cell = cell + torch.bmm(cell, strain)
            graph[keys.CELL] = cell
            inputs.append(displacement)
        graph[keys.POSITIONS] = positions

        energy = self.energy_model(graph)
        out = {keys.ENERGY: energy}
        if inputs:
            grads = torch.autograd.grad(
                [energy.sum()], inputs, create_graph=self.training, allow_unused=True
            )
            if compute_forces:
                g = grads[0]
                out[keys.FORCES] = -g if g is not None else torch.zeros_like(inputs[0])
            if compute_stress:
                g = grads[-1]
                volume = torch.abs(torch.linalg.det(unstrained_cell.detach()))
                virial = g if g is not None else torch.zeros_like(cell)
                out[keys.STRESS] = virial / volume.view(-1, 1, 1)
        return out
