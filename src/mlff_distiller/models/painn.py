"""PaiNN energy model (Schütt, Unke, Gastegger, ICML 2021) for distilled students.

The model maps a flat graph (see :mod:`mlff_distiller.keys`) to per-structure energies.
Forces and stress are *not* computed here: :class:`mlff_distiller.models.forces.ForceField`
differentiates this energy. Neighbour lists are built outside the model, so exported graphs
take edges as inputs.

Graphs carry full directed edge lists (every edge and its reverse). The model keeps each
pair once (:func:`edge_pairs`) and computes distances, radial basis and filters once per
pair (and interaction) for both directions, W(r_ij) = W(r_ji): half the radial work of a
directed list.

Shapes: ``N`` atoms, ``E`` directed edges, ``P`` pairs (E = 2P), ``B`` structures, ``F``
hidden features.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from mlff_distiller import keys

MAX_ATOMIC_NUMBER = 118


@dataclass(frozen=True)
class PaiNNConfig:
    """Hyperparameters of a PaiNN student. Presets are named instances of this class."""

    hidden: int = 128  # F, features per atom (scalar channels; vectors have 3 x F)
    n_interactions: int = 3  # message + mixing blocks
    n_rbf: int = 20  # radial basis functions
    cutoff: float = 5.0  # Å, cosine cutoff radius
    rbf: str = "sin"  # "sin" (PaiNN paper) or "gaussian"
    elements: tuple[int, ...] = (1, 6, 7, 8, 9, 16, 17)  # atomic numbers the model knows
    shared_filters: bool = False  # one radial filter for all interactions
    activation: str = "silu"  # only SiLU is implemented; kept for provenance

    def __post_init__(self) -> None:
        problems = []
        if self.hidden < 2 or self.hidden % 2:
            problems.append(f"hidden={self.hidden} (expected an even integer >= 2)")
        if self.n_interactions < 1:
            problems.append(f"n_interactions={self.n_interactions} (expected >= 1)")
        if self.n_rbf < 1:
            problems.append(f"n_rbf={self.n_rbf} (expected >= 1)")
        if not (self.cutoff > 0 and math.isfinite(self.cutoff)):
            problems.append(f"cutoff={self.cutoff} (expected a positive number of Å)")
        if self.rbf not in ("sin", "gaussian"):
            problems.append(f"rbf={self.rbf!r} (expected 'sin' or 'gaussian')")
        if self.activation != "silu":
            problems.append(f"activation={self.activation!r} (only 'silu' is implemented)")
        elements = tuple(int(z) for z in self.elements)
        if not elements or len(set(elements)) != len(elements):
            problems.append(f"elements={self.elements} (expected distinct atomic numbers)")
        elif min(elements) < 1 or max(elements) > MAX_ATOMIC_NUMBER:
            problems.append(f"elements={self.elements} (atomic numbers must be 1..118)")
        if problems:
            from mlff_distiller.errors import InputError

            raise InputError("invalid PaiNNConfig: " + "; ".join(problems))
        object.__setattr__(self, "elements", tuple(sorted(elements)))

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["elements"] = list(self.elements)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PaiNNConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            from mlff_distiller.errors import InputError

            raise InputError(
                f"unknown PaiNNConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        d = dict(d)
        if "elements" in d:
            d["elements"] = tuple(d["elements"])
        return cls(**d)


def replace_config(config: PaiNNConfig, **changes) -> PaiNNConfig:
    """A copy of ``config`` with ``changes`` applied (validated like a new config)."""
    d = config.to_dict()
    d.update(changes)
    return PaiNNConfig.from_dict(d)


class RadialBasis(nn.Module):
    """Radial basis (E,) distances in Å -> (E, n_rbf), and the cosine cutoff (E, 1).

    The cutoff multiplies the radial *filters* (after the filter network, bias included),
    so every edge's message goes smoothly to exactly zero at ``cutoff`` and edges beyond it
    (a Verlet list with a skin) contribute nothing.
    """

    def __init__(self, n_rbf: int, cutoff: float, kind: str) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.sin_basis = kind == "sin"
        if self.sin_basis:
            # sin(n pi r / rc) / r, n = 1..n_rbf
            freqs = torch.arange(1, n_rbf + 1, dtype=torch.get_default_dtype()) * math.pi / cutoff
        else:
            # exp(-gamma (r - mu_n)^2), mu_n evenly spaced on [0, rc]
            freqs = torch.linspace(0.0, cutoff, n_rbf)
        self.register_buffer("freqs", freqs)
        width = cutoff / max(n_rbf - 1, 1)
        self.gamma = 0.5 / width**2

    def forward(self, distances: Tensor) -> tuple[Tensor, Tensor]:
        r = distances.unsqueeze(-1)
        if self.sin_basis:
            basis = torch.sin(r * self.freqs) / r
        else:
            basis = torch.exp(-self.gamma * (r - self.freqs) ** 2)
        # cosine cutoff 0.5 (cos(pi r / rc) + 1) for r < rc, 0 beyond
        envelope = torch.where(
            r < self.cutoff, 0.5 * torch.cos(r * (math.pi / self.cutoff)) + 0.5, 0.0
        )
        return basis, envelope


class MessageBlock(nn.Module):
    """Interaction: atoms receive scalar and vector messages from their neighbours.

    ds_i = sum_j phi_s(s_j) * W_s(r_ij)
    dv_i = sum_j v_j * phi_vv(s_j) * W_vv(r_ij) + r_hat_ij * phi_vs(s_j) * W_vs(r_ij)

    Gathers use ``index_select`` (its backward is one ``index_add_``); scalar and vector
    messages are summed into s and v by one ``index_add`` each. ``first=True`` skips the
    v_j term, which is zero before the first interaction. The E = 2P edges are P pairs
    followed by the same pairs reversed, and ``filters`` holds one row per pair, used for
    both directions.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.context = nn.Sequential(
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden)
        )

    def forward(
        self,
        s: Tensor,  # (N, F)
        v: Tensor,  # (N, 3, F)
        filters: Tensor,  # (P, 3F), radial filters already multiplied by the cutoff
        unit_vectors: Tensor,  # (E, 3)
        centre: Tensor,  # (E,) index i
        neighbour: Tensor,  # (E,) index j
        first: bool = False,
        context: Tensor | None = None,  # (N, 3F) self.context(s) if already known
    ) -> tuple[Tensor, Tensor]:
        f = self.hidden
        if context is None:
            context = self.context(s)
        x = context.index_select(0, neighbour)  # (E, 3F)
        x = (x.view(2, filters.shape[0], 3 * f) * filters).view(-1, 3 * f)
        ds, dvv, dvs = torch.split(x, f, dim=-1)
        dv = dvs.unsqueeze(1) * unit_vectors.unsqueeze(2)  # (E, 3, F)
        if not first:
            dv = dv + dvv.unsqueeze(1) * v.index_select(0, neighbour)
        # two scatters, not one over cat([ds, dv]): the cat's backward made torch.compile
        # gather a masked, unvectorised (E, 4F) gradient (13.7 -> 10.2 ms at 76 atoms)
        return s.index_add(0, centre, ds), v.index_add(0, centre, dv)


class MixingBlock(nn.Module):
    """Update: mixes each atom's own scalar and vector channels.

    (U v, V v) = linear maps of v;  a = MLP([s, ||V v||]) = (a_vv, a_sv, a_ss)
    dv = a_vv * U v;  ds = a_ss + a_sv * <U v, V v>

    The gate MLP has a hidden width of F/2, which keeps the three presets at the
    prototype's parameter budgets (~430K / 77K / 21K).
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.uv = nn.Linear(hidden, 2 * hidden, bias=False)
        self.gate = nn.Sequential(
            nn.Linear(2 * hidden, hidden // 2), nn.SiLU(), nn.Linear(hidden // 2, 3 * hidden)
        )

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        f = self.hidden
        u, w = torch.split(self.uv(v), f, dim=-1)  # (N, 3, F) each
        w_norm = torch.sqrt(torch.sum(w * w, dim=1) + 1e-8)  # (N, F); eps keeps grad finite
        a_vv, a_sv, a_ss = torch.split(self.gate(torch.cat([s, w_norm], dim=-1)), f, dim=-1)
        v = v + a_vv.unsqueeze(1) * u
        s = s + a_ss + a_sv * torch.sum(u * w, dim=1)
        return s, v


class EnergyReadout(nn.Module):
    """Per-atom energy from scalar features: (N, F) -> (N,)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(hidden, hidden // 2), nn.SiLU(), nn.Linear(hidden // 2, 1)
        )

    def forward(self, s: Tensor) -> Tensor:
        hidden = self.mlp[1](self.mlp[0](s))  # (N, F/2)
        last = self.mlp[2]
        # The last layer has one output: a multiply-and-sum instead of an (N, F/2) x (F/2, 1)
        # matrix product, whose GEMM and backward cost more than the arithmetic at 9-80 atoms
        # (compiled programs, alternating: tiny 2-8%, original 0-12% faster); same
        # weights, so checkpoints load unchanged.
        return (hidden * last.weight[0]).sum(-1) + last.bias[0]


class PaiNN(nn.Module):
    """Graph -> per-structure energy (B,) in eV.

    Energy per atom = scale * (readout(s_i) - readout(s_isolated[Z_i])) + reference[Z_i].
    Subtracting the network's output for an isolated atom of the same element makes an
    atom without neighbours contribute exactly its reference energy, so far-apart fragments
    add up and single atoms are valid input. The per-element references (eV) are fitted by
    the trainer and stored with the weights, as is ``energy_scale`` (eV).
    """

    def __init__(self, config: PaiNNConfig) -> None:
        super().__init__()
        self.config = config
        f, n_int = config.hidden, config.n_interactions
        self.hidden = f
        self.n_interactions = n_int
        self.cutoff = float(config.cutoff)
        self.shared_filters = bool(config.shared_filters)
        z_to_index = torch.full((MAX_ATOMIC_NUMBER + 1,), -1, dtype=torch.long)
        for i, z in enumerate(config.elements):
            z_to_index[z] = i
        self.register_buffer("z_to_index", z_to_index)
        self.register_buffer("elements", torch.tensor(config.elements, dtype=torch.long))
        self.embedding = nn.Embedding(len(config.elements), f)
        self.radial_basis = RadialBasis(config.n_rbf, config.cutoff, config.rbf)
        n_filters = 1 if config.shared_filters else n_int
        self.filter_net = nn.Linear(config.n_rbf, n_filters * 3 * f)
        self.messages = nn.ModuleList([MessageBlock(f) for _ in range(n_int)])
        self.mixings = nn.ModuleList([MixingBlock(f) for _ in range(n_int)])
        self.readout = EnergyReadout(f)
        self.register_buffer("element_energies", torch.zeros(len(config.elements)))  # eV
        self.register_buffer("energy_scale", torch.ones(()))  # eV

    def element_index(self, atomic_numbers: Tensor) -> Tensor:
        """(N,) atomic numbers -> (N,) row in the element table (-1 when unknown)."""
        return self.z_to_index[atomic_numbers]

    def pair_vectors(self, graph: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Each pair of the graph's edges once, (2, P), and r_ij = r_j - r_i + shift @ cell,
        (P, 3) in Å. Graphs without ``edge_shift`` (molecules) skip the cell term."""
        positions = graph[keys.POSITIONS]
        shift: Tensor | None = None
        if keys.EDGE_SHIFT in graph:
            shift = graph[keys.EDGE_SHIFT]
        pairs, pair_shift = edge_pairs(graph[keys.EDGE_INDEX], shift)
        vectors = positions.index_select(0, pairs[1]) - positions.index_select(0, pairs[0])
        if pair_shift is not None:
            cell = graph[keys.CELL][graph[keys.BATCH][pairs[0]]]  # (P, 3, 3)
            vectors = vectors + torch.bmm(pair_shift.unsqueeze(1), cell).squeeze(1)
        return pairs, vectors

    def scalar_features(self, species: Tensor, pairs: Tensor, vectors: Tensor,
                        first_context: Tensor | None = None) -> Tensor:
        """Final scalar features (N, F) from element rows (N,), each neighbour pair (i, j)
        once (2, P), and the pairs' vectors r_j - r_i (P, 3) in Å.

        ``first_context`` (n_elements, 3F), :meth:`first_context` precomputed, replaces
        the first message's context network (inference on fixed weights)."""
        distances = torch.linalg.vector_norm(vectors, dim=-1)  # (P,)
        unit_vectors = vectors / distances.unsqueeze(-1)
        unit_vectors = torch.cat([unit_vectors, -unit_vectors])  # (E, 3): i->j, then j->i
        centre = torch.cat([pairs[0], pairs[1]])  # (E,)
        neighbour = torch.cat([pairs[1], pairs[0]])  # (E,)
        basis, envelope = self.radial_basis(distances)
        # filter_net(basis) * envelope as a GEMM: [basis * env, env] @ [W, b]^T, so no
        # elementwise pass (and its backward) over the large (P, 3F) filters. Without shared
        # filters each interaction makes its own just before its message, rather than all
        # (P, n_interactions * 3F) at once, so less is live: `original`'s compiled MD steps
        # 1.1x faster at 76 atoms and 1.2x on a 192-atom water box (its filters then fit the
        # L3 cache), unchanged at 9-40 atoms and on a 648-atom box (session 30)
        radial = torch.cat([basis * envelope, envelope], dim=1)  # (P, n_rbf + 1)
        weight = torch.cat([self.filter_net.weight, self.filter_net.bias.unsqueeze(1)], dim=1)
        f3 = 3 * self.hidden
        shared: Tensor | None = None
        if self.shared_filters:
            shared = torch.mm(radial, weight.t())  # (P, 3F)

        s = self.embedding(species)  # (N, F)
        v = torch.zeros(s.shape[0], 3, self.hidden, dtype=s.dtype, device=s.device)
        # zip without strict=: TorchScript does not know it; both lists have n_interactions
        for k, (message, mixing) in enumerate(zip(self.messages, self.mixings)):  # noqa: B905
            if shared is None:
                w = torch.mm(radial, weight.narrow(0, k * f3, f3).t())  # (P, 3F)
            else:
                w = shared
            context: Tensor | None = None
            if k == 0 and first_context is not None:
                context = first_context.index_select(0, species)
            s, v = message(s, v, w, unit_vectors, centre, neighbour, k == 0, context)
            s, v = mixing(s, v)
        return s

    def first_context(self) -> Tensor:
        """The first message's context network of each element's embedding (n_elements, 3F):
        before any message an atom's scalar features depend on its element alone."""
        return self.messages[0].context(self.embedding.weight)

    def atom_offsets(self) -> Tensor:
        """Per-element constant (n_elements,) eV: reference - scale * isolated-atom readout."""
        return self.element_energies - self.energy_scale * self.isolated_atom_outputs()

    def atomic_energies(self, graph: dict[str, Tensor]) -> Tensor:
        """Per-atom energies (N,) in eV for a flat graph."""
        species = self.z_to_index[graph[keys.ATOMIC_NUMBERS]]
        pairs, vectors = self.pair_vectors(graph)
        s = self.scalar_features(species, pairs, vectors)
        return self.readout(s) * self.energy_scale + self.atom_offsets()[species]

    def isolated_atom_outputs(self) -> Tensor:
        """Readout (n_elements,) of each element's atom with no neighbours.

        Same blocks as :meth:`atomic_energies` with all messages zero.
        """
        s = self.embedding.weight
        v = torch.zeros(s.shape[0], 3, self.hidden, dtype=s.dtype, device=s.device)
        for mixing in self.mixings:
            s, v = mixing(s, v)
        return self.readout(s)

    def forward(self, graph: dict[str, Tensor]) -> Tensor:
        """Energies (B,) in eV; ``B`` = number of cells in the graph."""
        atomic = self.atomic_energies(graph)
        n_structures = graph[keys.CELL].shape[0]
        energy = torch.zeros(n_structures, dtype=atomic.dtype, device=atomic.device)
        return energy.index_add_(0, graph[keys.BATCH], atomic)


def edge_pairs(edge_index: Tensor, edge_shift: Tensor | None = None
               ) -> tuple[Tensor, Tensor | None]:
    """A full directed edge list (2, E), with its (E, 3) cell shifts, -> each pair once.

    Keeps (i, j, S) with i < j and, for an atom's own periodic images (i = i), the one of
    S, -S whose first component larger than 1e-3 in size is positive (shifts are integer
    cell multiples, or Cartesian Å for metatomic, whose round-off this tolerance absorbs).
    The list must hold every edge's reverse, as ``data.neighbors.neighbor_list`` builds it.

    Returns:
        pairs (2, P) and their shifts (P, 3) (None when ``edge_shift`` is None).
    """
    i, j = edge_index[0], edge_index[1]
    keep = i < j
    pair_shift: Tensor | None = None
    if edge_shift is not None:
        tol = 1e-3
        sx, sy, sz = edge_shift[:, 0], edge_shift[:, 1], edge_shift[:, 2]
        zx, zy = sx.abs() <= tol, sy.abs() <= tol
        positive = (sx > tol) | (zx & ((sy > tol) | (zy & (sz > tol))))
        keep = keep | ((i == j) & positive)
        pair_shift = edge_shift[keep]
    return edge_index[:, keep], pair_shift


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "EnergyReadout",
    "MessageBlock",
    "MixingBlock",
    "PaiNN",
    "PaiNNConfig",
    "RadialBasis",
    "count_parameters",
    "edge_pairs",
    "replace_config",
]
