"""Energy and forces of one structure replayed from a CUDA graph: the GPU fast path.

On a GPU a student's call is hundreds of small kernels, and launching them from Python
costs far more than running them: ``original`` on a 50-atom molecule takes 8.7 ms per eager
call on an H200 and 0.86 ms replayed from a CUDA graph (``benchmarks/gpu_inference.py``,
torch 2.11). A graph replays fixed shapes at fixed addresses, so
:class:`GraphedEnergyAndForces` copies each call's inputs into static tensors padded to a
pair *capacity*:

* one ghost atom, appended as a second structure far from everything (``GHOST_DISTANCE``),
* the unused pair slots hold (atom 0, ghost) pairs, beyond the cutoff, whose cosine
  envelope is exactly zero: they add exactly nothing to any energy or force,
* the ghost's energy (structure 1) and force are dropped.

A structure's first call runs eagerly and its second captures the graph; it is captured
again only when a call needs more pairs than the capacity (which then grows by
``GROWTH``), or, on the second call of another atom count, dtype or periodicity. So an MD
run's neighbour-list redraws replay one graph, and single points over molecules of
different sizes each cost an eager call rather than a capture: a capture costs 45-50 ms
(50 atoms, H200: the calculator's first call took 72 ms against 23 ms eager for
``original``, session 17, when the first call captured), and each replayed call saves ~8
ms. Many structures at once are better served by the batched path
(:class:`~mlff_distiller.md.fast.ChunkedEnergyAndForces`, ``mlffd evaluate``). Results
equal the eager model's to float rounding (``tests/md/test_cuda_graphs.py`` checks the
padding and the capture policy on a CPU, with a stand-in for the graph, and the replay
on a GPU).

``GraphedEnergyAndForces(fast, compile=True)`` (``StudentCalculator(device="cuda",
compile=True)``) records ``torch.compile(fast)`` instead: Inductor's fused Triton kernels,
0.49-0.53 ms per replay for ``original`` at 50 atoms on an H200 against 0.84 ms for the
eager kernels, after 15-33 s of compiling (session 18, ``gpu_inference.py``).

Shapes: ``N`` atoms, ``P`` pairs, ``C`` the pair capacity (C >= P).
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from mlff_distiller.errors import InputError

GHOST_DISTANCE = 1.0e4  # Å from the origin along x, y and z: beyond any molecule's cutoff
GROWTH = 1.25  # the pair capacity is the needed count times this, rounded up to 64
WARMUP_CALLS = 3  # eager calls on a side stream before a capture (allocator, kernels)


def pair_capacity(n_pairs: int) -> int:
    """Pair slots for a graph that must take ``n_pairs`` pairs, with room to grow."""
    return 64 * math.ceil(max(1, n_pairs) * GROWTH / 64)


def capture_graph(call, args: tuple) -> tuple[torch.cuda.CUDAGraph, object]:
    """``call(*args)`` recorded in a CUDA graph after ``WARMUP_CALLS`` calls on a side stream
    (allocator, kernels); returns the graph and the call's outputs, which each replay
    rewrites. The graph reads ``args``' memory: keep them alive as long as the graph."""
    device = next(a.device for a in args if isinstance(a, Tensor))
    if device.type != "cuda":
        raise InputError(f"a CUDA graph needs CUDA inputs; these are on {device} (use "
                         "FastForceField on a CPU)")
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_CALLS):
            call(*args)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = call(*args)
    return graph, outputs


def compiled_for_graphs(fast, backend: str = "inductor"):
    """``torch.compile(fast)`` as ``GraphedEnergyAndForces(compile=True)`` records it:
    static shapes for the first structure, automatic dynamic shapes from the first
    structure of another size on (one more compile, which later sizes reuse). ``backend``:
    ``"aot_eager"`` traces without generating code (the CPU tests)."""
    return torch.compile(fast, backend=backend)


def structure_of(positions: Tensor, shift_vectors: Tensor | None) -> tuple:
    """(atom count, dtype, periodic) of a call's inputs: what a graph is captured for."""
    return positions.shape[0], positions.dtype, shift_vectors is not None


class PaddedInputs:
    """Static, padded copies of one structure's inputs for a graph to read; see the module
    docstring. ``fill`` copies a call's inputs in; the tensors never move.

    Attributes (all on the inputs' device):
        positions: (N + 1, 3) Å, the ghost last.
        species: (N + 1,) element rows, the ghost's 0.
        pairs: (2, C), the call's P pairs first, then (0, N) ghost pairs.
        shift_vectors: (C, 3) Å, zeros in the ghost slots; None for molecules.
        batch: (N + 1,) zeros, the ghost's 1.
    """

    def __init__(self, n_atoms: int, capacity: int, periodic: bool, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.n_atoms, self.capacity = n_atoms, capacity
        self.positions = torch.zeros(n_atoms + 1, 3, dtype=dtype, device=device)
        self.positions[n_atoms] = GHOST_DISTANCE
        self.species = torch.zeros(n_atoms + 1, dtype=torch.long, device=device)
        self.pairs = torch.zeros(2, capacity, dtype=torch.long, device=device)
        self.pairs[1] = n_atoms
        self.shift_vectors = (torch.zeros(capacity, 3, dtype=dtype, device=device)
                              if periodic else None)
        self.batch = torch.zeros(n_atoms + 1, dtype=torch.long, device=device)
        self.batch[n_atoms] = 1
        self._n_pairs = 0
        self._species_source: Tensor | None = None
        self._pairs_source: Tensor | None = None
        self._shifts_source: Tensor | None = None

    @property
    def structure(self) -> tuple:
        """:func:`structure_of` these inputs (the ghost left out)."""
        return self.n_atoms, self.positions.dtype, self.shift_vectors is not None

    def fits(self, positions: Tensor, pairs: Tensor, shift_vectors: Tensor | None) -> bool:
        """True when a call of these inputs can use these tensors."""
        return (pairs.shape[1] <= self.capacity
                and structure_of(positions, shift_vectors) == self.structure)

    def fill(self, positions: Tensor, species: Tensor, pairs: Tensor,
             shift_vectors: Tensor | None) -> None:
        """Copy a call's inputs in. Species, pairs and shifts are copied only when they are
        other tensor objects than the last call's (an MD step passes the same ones until its
        list is redrawn), so change them by passing new tensors, never in place."""
        n, p = self.n_atoms, pairs.shape[1]
        self.positions[:n].copy_(positions)
        if species is not self._species_source:
            self._species_source = species
            self.species[:n].copy_(species)
        if pairs is not self._pairs_source:
            self._pairs_source = pairs
            self.pairs[:, :p].copy_(pairs)
            if p < self._n_pairs:  # slots the last list used become ghost pairs again
                self.pairs[0, p:self._n_pairs] = 0
                self.pairs[1, p:self._n_pairs] = n
            self._n_pairs = p
            self._shifts_source = None
        if shift_vectors is not None and shift_vectors is not self._shifts_source:
            self._shifts_source = shift_vectors
            self.shift_vectors[:p].copy_(shift_vectors)
            self.shift_vectors[p:] = 0.0


class GraphedEnergyAndForces:
    """``fast`` (a :class:`~mlff_distiller.md.fast.FastForceField`) for one structure per
    call, replayed from a CUDA graph; see the module docstring.

    With ``compile=True`` the graph records ``torch.compile(fast)`` (Inductor's fused
    kernels) instead of ``fast``'s own kernels: fewer, bigger kernels per replay. The first
    capture compiles for its shapes (tens of seconds, ``compile_s``); the first recapture
    with other shapes (more pairs than the capacity, another atom count) compiles once more
    with dynamic sizes (torch.compile's automatic dynamic shapes), which later sizes reuse.
    The timings in the module docstring are of the first, static-shape kernels.

    Same arguments and results as :meth:`FastForceField.forward`: (energy (1,) eV,
    forces (N, 3) eV/Å), new tensors each call. Calls it cannot take (several structures)
    and a structure's first call run ``fast`` itself. Inputs must be on a CUDA device
    (else :class:`~mlff_distiller.errors.InputError` at the first capture).
    """

    def __init__(self, fast, compile: bool = False) -> None:
        self.fast = fast
        self.compiled = bool(compile)
        self._recorded = compiled_for_graphs(fast) if compile else fast
        self.captures = 0  # graphs captured so far (a structure's second call, growth)
        self.compile_s = 0.0  # seconds of compiling + capturing (compile=True only)
        self._capture_graph = capture_graph  # the CPU tests put a stand-in here
        self._called_once: tuple | None = None  # structure of the last call run eagerly
        self._inputs: PaddedInputs | None = None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._outputs: tuple[Tensor, Tensor] | None = None

    def __call__(self, positions: Tensor, species: Tensor, pairs: Tensor,
                 shift_vectors: Tensor | None, batch: Tensor, n_structures: int
                 ) -> tuple[Tensor, Tensor]:
        if n_structures != 1:
            return self.fast(positions, species, pairs, shift_vectors, batch, n_structures)
        inputs = self._inputs
        if inputs is not None and inputs.fits(positions, pairs, shift_vectors):
            inputs.fill(positions, species, pairs, shift_vectors)
        else:
            structure = structure_of(positions, shift_vectors)
            grown = inputs is not None and inputs.structure == structure  # more pairs
            if not grown and structure != self._called_once:
                # a structure's first call runs eagerly, its second captures: single
                # points over different molecules would otherwise pay a capture each
                self._called_once = structure
                return self.fast(positions, species, pairs, shift_vectors, batch, 1)
            inputs = PaddedInputs(positions.shape[0], pair_capacity(pairs.shape[1]),
                                  shift_vectors is not None, positions.dtype, positions.device)
            inputs.fill(positions, species, pairs, shift_vectors)
            self._capture(inputs)
        self._graph.replay()
        energy, forces = self._outputs
        return energy[:1].clone(), forces[:inputs.n_atoms].clone()

    def _capture(self, inputs: PaddedInputs) -> None:
        """Record the call on ``inputs`` (after warm-up calls on a side stream, which also
        compile it with ``compile=True``)."""
        args = (inputs.positions, inputs.species, inputs.pairs, inputs.shift_vectors,
                inputs.batch, 2)
        # the old graph's memory goes back first; a failed capture leaves none to replay
        self._inputs = self._graph = self._outputs = None
        start = time.perf_counter()
        try:
            graph, outputs = self._capture_graph(self._recorded, args)
        except Exception as exc:
            if not self.compiled or isinstance(exc, InputError):
                raise
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            raise InputError(
                f"compile=True on {inputs.positions.device}: torch.compile of the student "
                f"failed ({type(exc).__name__}: {first_line}); pass compile=False (the CUDA "
                "graph of the uncompiled student)") from exc
        if self.compiled:
            self.compile_s += time.perf_counter() - start
        self._inputs, self._graph, self._outputs = inputs, graph, outputs
        self.captures += 1


__all__ = ["GHOST_DISTANCE", "GraphedEnergyAndForces", "PaddedInputs", "capture_graph",
           "compiled_for_graphs", "pair_capacity"]
