"""The metatomic ``ModelInterface`` of a student (imported only when metatomic is installed).

No ``from __future__ import annotations`` here: metatomic checks the real annotations.
"""

from typing import Dict, List, Optional  # noqa: UP035 (TorchScript needs typing names)

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System
from torch import Tensor

from mlff_distiller import keys
from mlff_distiller.models.painn import PaiNN


class MetatomicStudent(torch.nn.Module):
    """metatomic ``ModelInterface`` around the PaiNN energy model (energy per system).

    metatomic hands over neighbour *vectors* that carry autograd links to positions and
    cell. PaiNN builds r_ij = r_j - r_i + shift @ cell, so each edge gets cell = 1 and
    shift = vector - (r_j - r_i): the sum is the vector itself, with its gradient.
    """

    def __init__(self, model: PaiNN, cutoff: float) -> None:
        super().__init__()
        self.model = model
        self.options = NeighborListOptions(cutoff=cutoff, full_list=True, strict=True)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:  # noqa: UP006
        return [self.options]

    def forward(
        self,
        systems: List[System],  # noqa: UP006
        outputs: Dict[str, ModelOutput],  # noqa: UP006
        selected_atoms: Optional[Labels] = None,  # noqa: UP045
    ) -> Dict[str, TensorMap]:  # noqa: UP006
        if "energy" not in outputs or len(systems) == 0:
            return {}
        positions: List[Tensor] = []  # noqa: UP006
        numbers: List[Tensor] = []  # noqa: UP006
        batch: List[Tensor] = []  # noqa: UP006
        edges: List[Tensor] = []  # noqa: UP006
        shifts: List[Tensor] = []  # noqa: UP006
        offsets: List[int] = []  # noqa: UP006
        offset = 0
        for k, system in enumerate(systems):
            neighbors = system.get_neighbor_list(self.options)
            pairs = neighbors.samples.values[:, :2].to(torch.long).T
            vectors = neighbors.values.reshape(-1, 3)
            pos = system.positions
            shifts.append(vectors - (pos[pairs[1]] - pos[pairs[0]]))
            edges.append(pairs + offset)
            positions.append(pos)
            numbers.append(system.types.to(torch.long))
            batch.append(torch.full_like(system.types, k, dtype=torch.long))
            offsets.append(offset)
            offset += pos.shape[0]
        dtype = positions[0].dtype
        device = positions[0].device
        n_systems = len(systems)
        graph = {
            keys.POSITIONS: torch.cat(positions),
            keys.ATOMIC_NUMBERS: torch.cat(numbers),
            keys.EDGE_INDEX: torch.cat(edges, dim=1),
            keys.EDGE_SHIFT: torch.cat(shifts),
            keys.CELL: torch.eye(3, dtype=dtype, device=device).expand(n_systems, 3, 3),
            keys.BATCH: torch.cat(batch),
        }
        atomic = self.model.atomic_energies(graph)
        if selected_atoms is not None:
            mask = torch.zeros_like(atomic)
            sel = selected_atoms.values.to(torch.long)
            start = torch.tensor(offsets, dtype=torch.long, device=device)[sel[:, 0]]
            mask[start + sel[:, 1]] = 1.0
            atomic = atomic * mask
        energy = torch.zeros(n_systems, dtype=dtype, device=device)
        energy = energy.index_add(0, graph[keys.BATCH], atomic)
        block = TensorBlock(
            values=energy.unsqueeze(1),
            samples=Labels(
                ["system"],
                torch.arange(n_systems, dtype=torch.int32, device=device).unsqueeze(1),
            ),
            components=[],
            properties=Labels(["energy"], torch.zeros(1, 1, dtype=torch.int32, device=device)),
        )
        key = Labels(["_"], torch.zeros(1, 1, dtype=torch.int32, device=device))
        return {"energy": TensorMap(key, [block])}

