"""The fast inference path used by the ASE calculator and MD: same energies and forces as the
eager :class:`~mlff_distiller.models.forces.ForceField` in eval mode, less work per step.

* :class:`VerletNeighborList` builds candidate pairs within ``cutoff + skin`` and reuses them
  until an atom has moved more than ``skin / 2`` (or the cell, pbc or atom count changed).
  Each step it keeps only the candidates now within the cutoff (:meth:`pairs_within`), so
  the model does no work for the skin's pairs (they would contribute exactly zero). A
  molecule of up to :data:`ALL_PAIRS_MAX_ATOMS` atoms takes every pair of its atoms as
  candidates instead: that list never needs rebuilding, and measuring all of them costs
  less than vesin's list and its rebuilds.
* The fast path takes each pair once (a half list, ``pairs`` (2, P)), as the model works
  (``models.painn.edge_pairs``); :func:`edges_from_pairs` gives the full list back.
* :class:`FastForceField` is a frozen copy of the energy model: no parameter gradients, the
  isolated-atom readout folded into one per-element offset table, the first message's
  context network (it sees only the element) into another, Cartesian cell shifts
  precomputed per neighbour-list build (none for molecules), forces by one backward pass
  without a double-backward graph. It is scriptable (``torch.jit.script``).
* :func:`tune_allocator` stops glibc from returning big tensor buffers to the OS after
  every call (the calculator calls it).
* :class:`CompiledEnergyAndForces` compiles energy and forces ahead of time into one
  AOTInductor program (dynamic shapes) for long MD runs; compiling costs tens of seconds.
  The program takes a whole velocity Verlet step around the student (:class:`VerletStep`);
  a single point is that step with a time step of zero.
* :class:`ChunkedEnergyAndForces` evaluates a batch of many structures in groups of about
  :data:`CPU_CHUNK_PAIRS` pairs on a CPU, so throughput does not fall as the batch grows;
  :func:`batched_energy_and_forces` builds it around the eager model or, with
  ``compile=True``, around the compiled program, one structure per call.

Shapes: ``N`` atoms, ``E`` directed edges, ``P`` pairs (E = 2P), ``B`` structures.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mlff_distiller import keys
from mlff_distiller.data.neighbors import neighbor_list
from mlff_distiller.errors import InputError
from mlff_distiller.md import program_cache
from mlff_distiller.md.analysis import largest_squared_displacement
from mlff_distiller.models.forces import ForceField
from mlff_distiller.models.painn import edge_pairs

DEFAULT_SKIN = 0.5  # Å, Verlet skin of the calculator's neighbour list
# molecules (no periodic axis) up to this many atoms take every pair as candidates: measuring
# them all and keeping those within reach costs less than vesin's list, whose Python call
# alone costs more than the arithmetic, and its rebuilds. benchmarks/pair_list_draws.py, 2
# cores, right after a compiled program call as in MD: a draw from all pairs 23 / 29 / 39 /
# 67 us at 9 / 20 / 40 / 76 atoms, from vesin's candidates 29 / 35 / 38 / 47 us plus a
# rebuild of 114-173 us every few draws; per draw, all pairs cost 0.34-0.64x as much at
# 9-76 atoms, 0.90x on a 128-atom cluster and 1.12x at 160
ALL_PAIRS_MAX_ATOMS = 128
CPU_CHUNK_PAIRS = 1024  # pairs per call of a chunked batch on a CPU (ChunkedEnergyAndForces)
AT_REST_SIZES = 64  # atom counts whose constant single-point inputs a compiled caller keeps


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep freed large blocks in glibc's heap instead of returning them to the OS.

    glibc serves big tensors (E x F floats) with fresh ``mmap`` pages and gives them back on
    free, so every call page-faults its buffers anew; batched throughput then falls ~3x from
    batch 8 to 64. ``mallopt`` (mmap threshold 1 GiB, trim threshold 2 GiB, top pad 64 MiB)
    removes that, about as well as ``LD_PRELOAD`` of tcmalloc, without restarting the
    process; the price is that the process keeps its peak heap. Idempotent; False where
    glibc's ``mallopt`` is not available (other libcs, macOS, Windows).
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = (mallopt(m_mmap_threshold, 1 << 30) == 1) & (mallopt(m_trim_threshold, 2**31 - 1) == 1)
    mallopt(m_top_pad, 64 << 20)
    _ALLOCATOR_TUNED = bool(ok)
    return _ALLOCATOR_TUNED


def pair_squared_lengths(positions: np.ndarray, pairs: np.ndarray,
                         shift_vectors: np.ndarray | None) -> np.ndarray:
    """|r_j - r_i + shift|^2 (P,) Å^2 of ``pairs`` (2, P) at ``positions`` (n, 3) Å;
    ``shift_vectors`` (P, 3) Å are the pairs' cell shifts (None: a molecule)."""
    i, j = pairs
    vectors = np.take(positions, j, axis=0)
    vectors -= np.take(positions, i, axis=0)
    if shift_vectors is not None:
        vectors += shift_vectors
    return np.einsum("pk,pk->p", vectors, vectors)


def kept_pairs(keep: np.ndarray, pairs: np.ndarray, pair_shift: np.ndarray, periodic: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (2, P) and their cell shifts (P, 3) where ``keep`` (P,) is True: the arrays
    themselves when every pair is kept (so a caller may reuse what it derived from them),
    and for a molecule (shifts all zero) a view of its shifts."""
    if keep.all():
        return pairs, pair_shift
    kept = np.compress(keep, pairs, axis=1)
    if not periodic:
        return kept, pair_shift[: kept.shape[1]]
    return kept, np.compress(keep, pair_shift, axis=0)


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the arrays have the same shape, dtype and bytes (NaN equals itself; 0.0
    and -0.0 differ): a cheap exact change test for small per-step arrays."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class VerletNeighborList:
    """Pairs (each once) within ``cutoff + skin``, rebuilt only when needed.

    Rebuilt when any atom moved more than ``skin / 2`` since the last build (then no pair
    can have entered the cutoff unseen), or when the number of atoms, the cell or pbc
    changed. A caller that needs every pair within ``cutoff + within`` asks
    :meth:`update` for it: the list is then rebuilt once an atom moved more than
    ``(skin - within) / 2``.

    A molecule (no periodic axis) of at most ``all_pairs_max_atoms`` atoms takes every pair
    of its atoms as candidates (:attr:`all_pairs`): they stay valid however far the atoms
    move, so only a change of atom count or pbc rebuilds them.

    Args:
        cutoff: the model's cutoff in Å.
        skin: extra shell in Å; 0 rebuilds on every move.
        all_pairs_max_atoms: largest molecule listed by all its pairs (0: always vesin).
    """

    def __init__(self, cutoff: float, skin: float = DEFAULT_SKIN,
                 all_pairs_max_atoms: int = ALL_PAIRS_MAX_ATOMS) -> None:
        if not skin >= 0:
            raise InputError(f"neighbour-list skin={skin} Å (expected >= 0)")
        if not (isinstance(all_pairs_max_atoms, int) and all_pairs_max_atoms >= 0):
            raise InputError(f"all_pairs_max_atoms={all_pairs_max_atoms!r} (expected an "
                             "integer >= 0; 0 lists every structure with vesin)")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.all_pairs_max_atoms = all_pairs_max_atoms
        self.all_pairs = False  # the candidates are every pair of a molecule's atoms
        self.n_builds = 0
        self.pairs = np.zeros((2, 0), dtype=np.int64)  # (2, P), each pair once
        self.pair_shift = np.zeros((0, 3))  # (P, 3) integer cell multiples
        self._positions: np.ndarray | None = None
        self._cell: np.ndarray | None = None
        self._pbc: np.ndarray | None = None
        # largest squared move (Å^2) of an atom from the build's positions at the last update
        self._moved_squared = 0.0

    def update(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
               within: float = 0.0) -> bool:
        """Bring the list up to date for ``positions`` (n, 3) Å, holding every pair within
        ``cutoff + within`` (0 <= within <= skin, Å); True when it was rebuilt."""
        if not 0.0 <= within <= self.skin:
            raise InputError(f"neighbour-list update within={within} Å (expected between 0 "
                             f"and the skin, {self.skin} Å)")
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        pbc = np.asarray(pbc, dtype=bool).reshape(3)
        if not self._needs_rebuild(positions, cell, pbc, within):
            return False
        n_atoms = len(positions)
        self.all_pairs = not pbc.any() and n_atoms <= self.all_pairs_max_atoms
        if self.all_pairs:
            self.pairs = np.stack(np.triu_indices(n_atoms, 1)).astype(np.int64, copy=False)
            self.pair_shift = np.zeros((self.pairs.shape[1], 3))
        else:
            self.pairs, self.pair_shift = neighbor_list(
                positions, cell, pbc, self.cutoff + self.skin, full_list=False
            )
        self._positions, self._cell, self._pbc = positions.copy(), cell.copy(), pbc.copy()
        self._moved_squared = 0.0
        self.n_builds += 1
        return True

    def unlisted_beyond(self) -> float:
        """Å beyond the cutoff that every pair missing from the list is at least, at the
        positions of the last :meth:`update`: ``skin`` less twice the largest move since the
        build (inf when the list holds every pair)."""
        if self.all_pairs:
            return math.inf
        return self.skin - 2.0 * math.sqrt(self._moved_squared)

    def squared_lengths(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """|r_j - r_i + S @ cell|^2 (P,) Å^2 of the candidate pairs at ``positions`` (n, 3)
        Å and ``cell`` (3, 3) Å, after :meth:`update`."""
        periodic = self._pbc is not None and bool(self._pbc.any())
        return pair_squared_lengths(positions, self.pairs,
                                    self.pair_shift @ cell if periodic else None)

    def pairs_within(self, positions: np.ndarray, cell: np.ndarray, margin: float = 0.0,
                     squared_lengths: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The candidate pairs now closer than the cutoff (plus ``margin`` Å, at most the
        skin): (pairs (2, P), pair_shift (P, 3)) for ``positions`` (n, 3) Å and ``cell``
        (3, 3) Å after :meth:`update`. ``squared_lengths``: :meth:`squared_lengths` at these
        positions when the caller has them (one pass serves several margins).

        When every candidate is within the cutoff the candidate arrays themselves are
        returned (the same objects as last time, until the next rebuild), so a caller may
        reuse what it derived from them."""
        if (self.skin == 0 and not self.all_pairs) or self.pairs.shape[1] == 0:
            return self.pairs, self.pair_shift
        if squared_lengths is None:
            squared_lengths = self.squared_lengths(positions, cell)
        keep = squared_lengths < (self.cutoff + min(margin, self.skin)) ** 2
        return kept_pairs(keep, self.pairs, self.pair_shift, bool(self._pbc.any()))

    def _needs_rebuild(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                       within: float) -> bool:
        if self._positions is None or positions.shape != self._positions.shape:
            return True
        if self.all_pairs:  # every pair is a candidate whatever the positions and cell
            return not same_bytes(pbc, self._pbc)
        if not (same_bytes(cell, self._cell) and same_bytes(pbc, self._pbc)):
            return True
        # a pair within cutoff + within now was within cutoff + skin at the build while no
        # atom moved more than (skin - within) / 2 (not finite: rebuild, and fail there)
        moved = largest_squared_displacement(positions, self._positions)
        if not moved <= (0.5 * (self.skin - within)) ** 2:
            return True
        self._moved_squared = moved
        return False


class FastForceField(nn.Module):
    """Inference-only energies (B,) eV and forces (N, 3) eV/Å of a trained student.

    A frozen deep copy: later changes to the source model are not seen. Takes element rows
    (``species``, from :meth:`species`) rather than atomic numbers so per-step work holds
    no lookup.
    """

    def __init__(self, model: ForceField) -> None:
        super().__init__()
        energy_model = copy.deepcopy(model.energy_model).eval()
        for parameter in energy_model.parameters():
            parameter.requires_grad_(False)
        self.energy_model = energy_model
        with torch.no_grad():
            self.register_buffer("offsets", energy_model.atom_offsets().detach().clone())
            self.register_buffer("first_context",
                                 energy_model.first_context().detach().clone())
        self.cutoff = float(energy_model.cutoff)

    @torch.jit.ignore
    def species(self, atomic_numbers: Tensor) -> Tensor:
        """(N,) atomic numbers -> (N,) element rows; unknown elements are an error."""
        species = self.energy_model.z_to_index[atomic_numbers]
        if bool((species < 0).any()):
            unknown = sorted(set(atomic_numbers[species < 0].tolist()))
            raise InputError(f"atomic numbers {unknown} are not among the model's elements")
        return species

    @torch.jit.export
    def energy(
        self,
        positions: Tensor,  # (N, 3) Å
        species: Tensor,  # (N,) element rows
        pairs: Tensor,  # (2, P), each pair once (models.painn.edge_pairs of an edge list)
        shift_vectors: Tensor | None,  # (P, 3) Å, pair_shift @ cell; None: molecule
        batch: Tensor,  # (N,) structure index
        n_structures: int,
    ) -> Tensor:
        """Energies (B,) eV."""
        model = self.energy_model
        vectors = positions.index_select(0, pairs[1]) - positions.index_select(0, pairs[0])
        if shift_vectors is not None:
            vectors = vectors + shift_vectors
        s = model.scalar_features(species, pairs, vectors, self.first_context)
        atomic = model.readout(s) * model.energy_scale + self.offsets[species]
        energy = torch.zeros(n_structures, dtype=atomic.dtype, device=atomic.device)
        return energy.index_add_(0, batch, atomic)

    def forward(
        self,
        positions: Tensor,
        species: Tensor,
        pairs: Tensor,
        shift_vectors: Tensor | None,
        batch: Tensor,
        n_structures: int,
    ) -> tuple[Tensor, Tensor]:
        """(energies (B,) eV, forces (N, 3) eV/Å); arguments as in :meth:`energy`."""
        positions = positions.detach().requires_grad_(True)
        energy = self.energy(positions, species, pairs, shift_vectors, batch, n_structures)
        grads = torch.autograd.grad([energy.sum()], [positions], allow_unused=True)
        grad = grads[0]
        forces = -grad if grad is not None else torch.zeros_like(positions)
        return energy.detach(), forces


class VerletStep(nn.Module):
    """One velocity Verlet step of one structure around ``fast``'s energy and forces, in
    float64 outside the student as ASE's ``VelocityVerlet`` computes it::

        p' = p + (dt/2) F;  r' = r + dt p' / m;  E, F' = student(r');  p'' = p' + (dt/2) F'

    the form that :class:`CompiledEnergyAndForces` compiles. A single point is the step with
    ``dt = 0`` and zero momenta: r' = r + 0 = r exactly for finite r.

    Inputs: positions r (N, 3) Å, momenta p (N, 3) and forces F (N, 3) eV/Å at r, masses
    (N, 1) amu, ``steps`` (2,) = (dt/2, dt) in ASE time units, all float64; ``reference``
    (N, 3) Å, the positions a pair list was drawn at, and ``inverse_reach_squared`` (N,)
    Å^-2, 1 / (how far each atom may move from there before a pair the list's candidates
    lack could come within the cutoff)^2 (0: any distance), float64; ``watch`` (2, M), the
    candidate pairs the list lacks, and ``watch_cutoff_squared`` (M,) Å^2 float64, the
    squared cutoff each must stay beyond (0 for a placeholder pair, which then never
    counts); species (N,), pairs (2, P) and, for a periodic cell, shift_vectors (P, 3) Å in
    the student's dtype and ``watch_shift_vectors`` (M, 3) Å in float64.
    Outputs: F' (N, 3) eV/Å, r' (N, 3) Å and p'' (N, 3), float64, and (4,) float64: E' eV,
    the reach used by r' (:func:`_reach_used`: below 1, the list holds every pair within
    the cutoff at r'), the reach the positions the next step will take when nothing
    changes in between use by the atoms' moves alone (:func:`_moves_used`; the watched
    pairs are measured only at r'), and max_i |r'_i - r_i|^2 in Å^2, this step's largest
    move, from which the caller predicts whether the next step keeps the watched pairs
    beyond the cutoff (a step that brings one within it is found by the check of r' and
    taken again on a redrawn list); not finite when a position is not.

    The watched pairs are measured at r' alone because torch 2.13's Inductor miscompiles
    the step when they are also measured at the next step's positions (or at a bound
    computed from them): the program then returned zero forces, read from the gradient
    buffers before the backward pass filled them (seen for the ``tiny`` and ``ultra-tiny``
    test students, float32). :meth:`CompiledEnergyAndForces.program` checks every program
    against this module before using it.
    """

    def __init__(self, fast: FastForceField) -> None:
        super().__init__()
        self.fast = fast
        self.dtype = fast.offsets.dtype

    def forward(self, positions: Tensor, momenta: Tensor, forces: Tensor, masses: Tensor,
                steps: Tensor, reference: Tensor, inverse_reach_squared: Tensor,
                watch: Tensor, watch_cutoff_squared: Tensor, species: Tensor, pairs: Tensor,
                shift_vectors: Tensor | None = None, watch_shift_vectors: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        half_dt, dt = steps[0], steps[1]
        momenta = momenta + half_dt * forces
        moves = dt * momenta / masses
        positions = positions + moves
        batch = torch.zeros_like(species)
        energy, new_forces = self.fast(positions.to(self.dtype), species, pairs, shift_vectors,
                                       batch, 1)
        new_forces = new_forces.double()
        momenta = momenta + half_dt * new_forces
        upcoming = positions + dt * (momenta + half_dt * new_forces) / masses
        scalars = torch.stack([
            energy[0].double(),
            _reach_used(positions, reference, inverse_reach_squared, watch,
                        watch_cutoff_squared, watch_shift_vectors),
            _moves_used(upcoming, reference, inverse_reach_squared),
            (moves * moves).sum(1).amax()])
        return new_forces, positions, momenta, scalars


def _reach_used(positions: Tensor, reference: Tensor, inverse_reach_squared: Tensor,
                watch: Tensor, watch_cutoff_squared: Tensor, watch_shift_vectors: Tensor | None
                ) -> Tensor:
    """How much of a pair list's reach positions (N, 3) Å use, as a 0-d tensor: the larger
    of max_i |r_i - reference_i|^2 * inverse_reach_squared_i (N,) and max_k
    watch_cutoff_squared_k / |r_j - r_i + shift_k|^2 over the watched pairs (i, j) (2, M)
    (terms with a zero limit count as 0). Below 1: no atom has moved far enough for an
    unwatched pair to come within the cutoff, and every watched pair is beyond it. Not
    finite for a position that is not finite."""
    used = _moves_used(positions, reference, inverse_reach_squared)
    vectors = positions.index_select(0, watch[1]) - positions.index_select(0, watch[0])
    if watch_shift_vectors is not None:
        vectors = vectors + watch_shift_vectors
    squared = (vectors * vectors).sum(1)
    watched = torch.where(watch_cutoff_squared > 0, watch_cutoff_squared / squared,
                          torch.zeros_like(squared))
    return torch.maximum(used, watched.amax())


def _moves_used(positions: Tensor, reference: Tensor, inverse_reach_squared: Tensor
                ) -> Tensor:
    """max_i |r_i - reference_i|^2 * inverse_reach_squared_i of (N, 3) positions and (N,)
    weights, as a 0-d tensor (nan for a position that is not finite)."""
    moved = positions - reference
    return ((moved * moved).sum(1) * inverse_reach_squared).amax()


class CompiledEnergyAndForces:
    """``fast``'s forward compiled ahead of time by AOTInductor, for one structure per call.

    Same arguments and results as :meth:`FastForceField.forward`. The first molecule (no
    shift vectors) and the first periodic structure each compile a program (tens of seconds
    with a C++ compiler) with dynamic atom and pair counts, so sizes may change without
    recompiling. The program is a whole velocity Verlet step (:class:`VerletStep`), which
    :class:`~mlff_distiller.md.verlet.StudentVerlet` calls for each MD step; a call here is
    that step with a time step of zero (:meth:`single_point_inputs`). Built programs are
    kept in an on-disk cache (:mod:`mlff_distiller.md.program_cache`), so the same student
    compiles once per machine and loads in under a second afterwards.
    Calls the compiled program cannot take (several structures, fewer than 2 atoms, no
    pairs) run ``fast`` itself.

    Against ``torch.compile`` of the same function this removes the Python guard checks
    run before every call: 9 atoms, ``original``, 1 thread, 2.3 -> 1.4 ms per call (20
    atoms 2.5 -> 1.9 ms; 76 atoms 9.7 -> 9.3 ms), measured alternately in one process.

    The generated kernels (gathers, scatters, elementwise work) run on one thread while
    matrix products use torch's thread count: on molecules the kernels are too small to
    split, and Inductor's parallel scatters need atomic adds (whose code for the one-slot
    energy of a single structure fails to build in torch 2.13). Students of up to 64
    features per atom add their layers' biases in those kernels rather than through
    ``addmm`` (:mod:`mlff_distiller.md.bias_adds`).
    """

    def __init__(self, fast: FastForceField) -> None:
        self.fast = fast
        self.compile_s = 0.0  # total seconds spent compiling (or loading from the cache)
        self.cache_hits = 0  # programs loaded from the on-disk cache instead of built
        self._programs: dict[bool, Callable[[list[Tensor]], list[Tensor]]] = {}
        # per atom count N: zeros (N, 3), ones (N, 1), zero steps (2,), zero weights (N,),
        # and a placeholder watched pair (2, 1) with a zero limit (1,) and a zero shift
        # (1, 3); kept for up to AT_REST_SIZES counts (a batch of mixed molecules, one per
        # call, would otherwise make them anew each call: about 10 us)
        self._at_rest: dict[int, tuple[Tensor, ...]] = {}

    def __call__(self, positions: Tensor, species: Tensor, pairs: Tensor,
                 shift_vectors: Tensor | None, batch: Tensor, n_structures: int
                 ) -> tuple[Tensor, Tensor]:
        if n_structures != 1 or positions.shape[0] < 2 or pairs.shape[1] < 1:
            return self.fast(positions, species, pairs, shift_vectors, batch, n_structures)
        program = self.program(shift_vectors is not None, positions)
        forces, _, _, scalars = program(self.single_point_inputs(
            positions.double(), species, pairs, shift_vectors))
        # float64 copies of the student's float32 results: exact both ways
        return scalars[:1].to(positions.dtype), forces.to(positions.dtype)

    def single_point_inputs(self, positions: Tensor, species: Tensor, pairs: Tensor,
                            shift_vectors: Tensor | None) -> list[Tensor]:
        """The program's inputs for energy and forces at ``positions`` (N, 3) Å float64:
        the step with zero momenta, forces and time step (constant inputs kept between
        calls; nothing watched). Made contiguous (a masked numpy pair list may be
        column-major)."""
        n, device = positions.shape[0], positions.device
        at_rest = self._at_rest.get(n)
        if at_rest is None:
            def f64(*shape: int) -> Tensor:
                return torch.zeros(*shape, dtype=torch.float64, device=device)

            if len(self._at_rest) >= AT_REST_SIZES:
                self._at_rest.clear()
            at_rest = self._at_rest[n] = (
                f64(n, 3), f64(n, 1) + 1.0, f64(2), f64(n),
                torch.tensor([[0], [1]], device=device), f64(1), f64(1, 3))
        zeros, ones, no_time, no_reach, no_watch, no_limit, no_shift = at_rest
        positions = positions.contiguous()
        inputs = [positions, zeros, zeros, ones, no_time, positions, no_reach, no_watch,
                  no_limit, species.contiguous(), pairs.contiguous()]
        if shift_vectors is not None:
            inputs += [shift_vectors.contiguous(), no_shift]
        return inputs

    def program(self, periodic: bool, like: Tensor) -> Callable[[list[Tensor]], list[Tensor]]:
        """The compiled program itself (built or loaded on first use), for a caller that
        checks its inputs once and then calls it every MD step: :class:`VerletStep`'s
        inputs as a list (shift_vectors and watch_shift_vectors when ``periodic``; N >= 2
        atoms, P >= 1 pairs, M >= 1 watched pairs), all
        contiguous, on ``like``'s device, shift vectors in ``like``'s dtype (the
        student's) -> its outputs [forces (N, 3), positions (N, 3), momenta (N, 3), (energy,
        reach used, reach the next step's moves will use, largest move) (4,)], float64."""
        if periodic not in self._programs:
            self._programs[periodic] = self._compile(periodic, like)
        return self._programs[periodic]

    def _compile(self, periodic: bool, like: Tensor) -> Callable[[list[Tensor]], list[Tensor]]:
        from torch._inductor import aoti_load_package

        from mlff_distiller.md.bias_adds import UnfuseBiasAdds, unfuses_bias_adds

        if like.device.type != "cpu":
            # seen on an H200 with torch 2.11: every variant of the CUDA program segfaulted
            # in aoti_load_package, also in a fresh process; a GPU replays a CUDA graph instead
            raise InputError(
                f"compile=True on {like.device}: AOTInductor programs are built for CPUs here "
                "(CUDA ones crashed the process at load). On a GPU, StudentCalculator("
                "device='cuda', compile=True) records torch.compile's kernels in a CUDA graph "
                "(mlff_distiller.md.cuda_graphs.GraphedEnergyAndForces); here pass "
                "compile=False")
        start = time.perf_counter()
        # memory_planning: one pooled buffer for the program's intermediates instead of an
        # allocation each: 1.5-11% less time per call on molecules, identical results (9-76
        # atoms, 1 thread, alternating with the program without it)
        configs = {"cpp.threads": 1, "memory_planning": True}
        # narrow students add their biases in the following elementwise kernels (bias_adds)
        unfused = unfuses_bias_adds(self.fast.energy_model.hidden)
        key = program_cache.program_key(self.fast, periodic, like,
                                         {**configs, "unfuse_bias_adds": unfused})
        if unfused:
            configs["post_grad_custom_post_pass"] = UnfuseBiasAdds()
        cached = program_cache.cached_program(key)
        runner = None
        if cached is not None:
            try:
                runner = aoti_load_package(str(cached))
                os.utime(cached)  # recently used: kept longest by the cache's pruning
                self.cache_hits += 1
            except Exception as exc:  # a truncated or foreign file: rebuild and replace it
                print(f"mlff-distiller: cached program {cached} did not load "
                      f"({type(exc).__name__}); rebuilding it", file=sys.stderr)
        if runner is None:
            runner = self._build(periodic, like, configs, key)
        # the package's flat entry point: the runner's __call__ parses its pytree specs from
        # JSON on every call (~9 us); inputs and outputs here are flat already
        run = runner.loader.run
        self._check_program(run, periodic, like)
        self.compile_s += time.perf_counter() - start
        return run

    def _check_program(self, run: Callable[[list[Tensor]], list[Tensor]], periodic: bool,
                       like: Tensor) -> None:
        """Compare a built or loaded program with :class:`VerletStep` run eagerly on the
        tracing inputs; a program that differs is an error, never a wrong MD step (torch
        2.13's Inductor has miscompiled this step into one returning zero forces, see
        :class:`VerletStep`)."""
        inputs = _example_inputs(self.fast, periodic, like)
        expected = VerletStep(self.fast)(*inputs)
        got = run(inputs)
        names = ("forces", "positions", "momenta", "energy and reach")
        for name, value, reference in zip(names, got, expected, strict=True):
            scale = float(reference.detach().abs().max())
            if not torch.allclose(value, reference.detach(), rtol=1e-4,
                                  atol=1e-4 * scale + 1e-6, equal_nan=True):
                worst = float((value - reference.detach()).abs().max())
                raise RuntimeError(
                    f"compile=True built a program whose {name} differ from the eager "
                    f"model's on a check input (max difference {worst:.3g}, largest value "
                    f"{scale:.3g}): an AOTInductor miscompilation in torch "
                    f"{torch.__version__}. Use StudentCalculator(..., compile=False)")

    def _build(self, periodic: bool, like: Tensor, configs: dict, key: str):
        """Export and compile the program, store it in the cache, return its runner."""
        from torch._inductor import aoti_compile_and_package, aoti_load_package

        program = export_verlet_step(self.fast, periodic, like)
        with tempfile.TemporaryDirectory(prefix="mlffd-aoti-") as tmp:
            try:
                package = aoti_compile_and_package(
                    program, package_path=os.path.join(tmp, "energy_and_forces.pt2"),
                    inductor_configs=configs,
                )
                runner = aoti_load_package(package)
            except Exception as exc:  # Inductor raises many types (compiler missing, ...)
                first_line = (str(exc).strip().splitlines() or [""])[0][:300]
                raise RuntimeError(
                    "compile=True could not build the AOTInductor program "
                    f"({type(exc).__name__}: {first_line}); it needs a working C++ compiler "
                    "(g++ or clang, as Inductor finds it). Install one, or use "
                    "StudentCalculator(..., compile=False)"
                ) from exc
            program_cache.store_program(key, Path(package))
        return runner


class ChunkedEnergyAndForces:
    """``fn`` (a :class:`FastForceField` or :class:`CompiledEnergyAndForces`) over a batch of
    structures, called on consecutive groups of whole structures of at most ``max_pairs``
    pairs each (a structure with more pairs is a group of its own).

    Same arguments and results as :meth:`FastForceField.forward`; ``batch`` must be
    non-decreasing (structures contiguous, as :func:`~mlff_distiller.data.graph.collate`
    builds them), pairs may come in any order.

    Why: on a CPU one call's edge tensors (P pairs x 3F floats, per layer) outgrow the
    caches as the batch grows. ``original`` at 1 thread, 64 copies of a 76-atom molecule
    (58,560 pairs): 1,010 atoms/s in one call, 3,000 in groups of 1,024 pairs, 3,390 one
    structure per call (``benchmarks/inference.py``, one run); every preset and size peaked
    between about 500 and 2,000 pairs per call. On a GPU, where big calls pay, use
    ``max_pairs=None`` (one call), which :func:`chunk_pairs_for` gives for non-CPU devices.
    """

    def __init__(self, fn: Callable[..., tuple[Tensor, Tensor]],
                 max_pairs: int | None = CPU_CHUNK_PAIRS) -> None:
        if max_pairs is not None and not max_pairs >= 1:
            raise InputError(f"max_pairs={max_pairs} (expected an integer >= 1, or None)")
        self.fn = fn
        self.max_pairs = max_pairs

    def __call__(self, positions: Tensor, species: Tensor, pairs: Tensor,
                 shift_vectors: Tensor | None, batch: Tensor, n_structures: int
                 ) -> tuple[Tensor, Tensor]:
        if self.max_pairs is None or n_structures == 1 or pairs.shape[1] <= self.max_pairs:
            return self.fn(positions, species, pairs, shift_vectors, batch, n_structures)
        if bool((batch[1:] < batch[:-1]).any()):
            raise InputError("ChunkedEnergyAndForces: batch (N,) must be non-decreasing "
                             "(each structure's atoms contiguous, as collate builds them)")
        pair_structure = batch.index_select(0, pairs[0])
        if bool((pair_structure[1:] < pair_structure[:-1]).any()):
            order = torch.argsort(pair_structure, stable=True)
            pairs, pair_structure = pairs[:, order], pair_structure[order]
            shift_vectors = None if shift_vectors is None else shift_vectors[order]
        energies, forces = [], []
        for s0, s1, a0, a1, p0, p1 in self._groups(batch, pair_structure, n_structures):
            energy, force = self.fn(
                positions[a0:a1], species[a0:a1], pairs[:, p0:p1] - a0,
                None if shift_vectors is None else shift_vectors[p0:p1],
                batch[a0:a1] - s0, s1 - s0,
            )
            energies.append(energy)
            forces.append(force)
        return torch.cat(energies), torch.cat(forces)

    def _groups(self, batch: Tensor, pair_structure: Tensor, n_structures: int
                ) -> list[tuple[int, int, int, int, int, int]]:
        """(first, end) structure, atom and pair ranges of each group, greedily filled."""
        atom_counts = torch.bincount(batch, minlength=n_structures).tolist()
        pair_counts = torch.bincount(pair_structure, minlength=n_structures).tolist()
        groups, start, atom, pair = [], 0, 0, 0
        atoms_in = pairs_in = 0
        for s in range(n_structures):
            if s > start and pairs_in + pair_counts[s] > self.max_pairs:
                groups.append((start, s, atom, atom + atoms_in, pair, pair + pairs_in))
                start, atom, pair = s, atom + atoms_in, pair + pairs_in
                atoms_in = pairs_in = 0
            atoms_in += atom_counts[s]
            pairs_in += pair_counts[s]
        groups.append((start, n_structures, atom, atom + atoms_in, pair, pair + pairs_in))
        return groups


def fast_arguments(fast: FastForceField, graph: dict[str, Tensor]
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor, int]:
    """The arguments of :meth:`FastForceField.forward` (and of the compiled and chunked
    callers) for a collated graph (``data.graph.collate``): positions, element rows, each
    pair once, shift vectors (None when no structure is periodic), batch, structure count."""
    batch = graph[keys.BATCH]
    shift_vectors = None
    if not bool(graph[keys.PBC].any()):
        # no periodic axis: every shift is zero, so the pairs are the edges with i < j
        # (5.9 instead of 58 us per call on a 12-atom molecule, eager on 1 core)
        pairs, _ = edge_pairs(graph[keys.EDGE_INDEX])
    else:
        pairs, pair_shift = edge_pairs(graph[keys.EDGE_INDEX], graph[keys.EDGE_SHIFT])
        cells = graph[keys.CELL].index_select(0, batch.index_select(0, pairs[0]))
        shift_vectors = torch.einsum("pk,pkj->pj", pair_shift, cells)
    return (graph[keys.POSITIONS], fast.species(graph[keys.ATOMIC_NUMBERS]), pairs,
            shift_vectors, batch, int(graph[keys.CELL].shape[0]))


def chunk_pairs_for(device: torch.device | str) -> int | None:
    """:data:`CPU_CHUNK_PAIRS` on a CPU; None (the whole batch in one call) elsewhere."""
    return CPU_CHUNK_PAIRS if torch.device(device).type == "cpu" else None


def batched_energy_and_forces(fast: FastForceField, compile: bool = False,
                              max_pairs: int | None | str = "auto") -> ChunkedEnergyAndForces:
    """Energies and forces of a batch of whole structures (the arguments of
    :meth:`FastForceField.forward`, e.g. :func:`fast_arguments` of a collated graph): what
    torch-sim's ``StudentModel`` and ``mlffd bench``'s ``fast`` / ``compiled`` run.

    ``compile=False``: ``fast`` itself in calls of at most ``max_pairs`` pairs ("auto":
    :func:`chunk_pairs_for` the student's device; None: the whole batch in one call).
    ``compile=True`` (CPU only): each structure through the AOTInductor program of
    :class:`CompiledEnergyAndForces` (built once per student and machine, tens of seconds,
    then loaded from the on-disk cache), one structure per call. On molecules of 9-76 atoms,
    1 thread, batches of 8-64, that gives 1.5-4.4x the eager grouped calls' atoms/s (2.4-4.4x
    from 20 atoms), and throughput still grows from batch 8 to 64 (1.05-1.23x;
    ``benchmarks/inference.py``, ``batched_compiled_over_chunked``, session 28).
    """
    device = fast.offsets.device
    if compile:
        if device.type != "cpu":
            raise InputError(
                f"compile=True for a batch runs AOTInductor's CPU program, but the student "
                f"is on {device}: there the whole batch goes in one eager call, which keeps "
                f"the device busy; leave compile off (or move the student to the CPU)")
        if max_pairs not in ("auto", 1):
            raise InputError(
                f"max_pairs={max_pairs!r} with compile=True: the compiled program takes one "
                f"structure per call; leave max_pairs at 'auto'")
        return ChunkedEnergyAndForces(CompiledEnergyAndForces(fast), max_pairs=1)
    if max_pairs == "auto":
        max_pairs = chunk_pairs_for(device)
    elif isinstance(max_pairs, str):
        raise InputError(f"max_pairs={max_pairs!r} (expected an integer >= 1, None or 'auto')")
    return ChunkedEnergyAndForces(fast, max_pairs)


def export_verlet_step(fast: FastForceField, periodic: bool, like: Tensor):
    """:class:`VerletStep` around ``fast`` exported (``torch.export``) with dynamic atom and
    pair counts, the student on ``like``'s dtype and device: what AOTInductor compiles."""
    from torch.export import Dim

    from mlff_distiller.models.tracing import export_with_gradients

    args = _example_inputs(fast, periodic, like)
    atoms, pairs, watched = Dim("atoms", min=2), Dim("pairs", min=1), Dim("watched", min=1)
    per_atom = {0: atoms}
    dynamic = [per_atom, per_atom, per_atom, per_atom, None, per_atom, per_atom, {1: watched},
               {0: watched}, per_atom, {1: pairs}]
    if periodic:
        dynamic += [{0: pairs}, {0: watched}]
    return export_with_gradients(VerletStep(fast), args, dynamic)


def _example_inputs(fast: FastForceField, periodic: bool, like: Tensor) -> list[Tensor]:
    """Tracing inputs of :class:`VerletStep`: 5 atoms within the cutoff, all 10 pairs and 3
    of them watched (no size of 0 or 1, which tracing would specialise to, and no two sizes
    alike), a nonzero step; the student's inputs in ``like``'s dtype, on its device."""
    n = 5
    generator = torch.Generator().manual_seed(0)

    def f64(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator, dtype=torch.float64).to(like.device)

    positions = f64(n, 3) * (0.5 * fast.cutoff)
    species = (torch.arange(n) % fast.offsets.shape[0]).to(like.device)
    pairs = torch.triu_indices(n, n, 1).to(like.device)
    watched = 3
    args = [positions, f64(n, 3), f64(n, 3), f64(n, 1) + 1.0,
            torch.tensor([0.01, 0.02], dtype=torch.float64, device=like.device),
            positions + 0.01, f64(n) + 1.0, pairs[:, :watched].contiguous(),
            f64(watched) + fast.cutoff**2, species, pairs]
    if periodic:
        args += [torch.zeros(pairs.shape[1], 3).to(like), f64(watched, 3)]
    return args


def edges_from_pairs(pairs: np.ndarray, pair_shift: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Each pair (2, P) in both directions: edge_index (2, 2P) and edge_shift (2P, 3)."""
    return (np.concatenate([pairs, pairs[::-1]], axis=1),
            np.concatenate([pair_shift, -pair_shift]))


__all__ = [
    "ALL_PAIRS_MAX_ATOMS",
    "CPU_CHUNK_PAIRS",
    "DEFAULT_SKIN",
    "ChunkedEnergyAndForces",
    "CompiledEnergyAndForces",
    "FastForceField",
    "VerletNeighborList",
    "VerletStep",
    "batched_energy_and_forces",
    "chunk_pairs_for",
    "edges_from_pairs",
    "pair_squared_lengths",
    "export_verlet_step",
    "fast_arguments",
    "kept_pairs",
    "same_bytes",
    "tune_allocator",
]
