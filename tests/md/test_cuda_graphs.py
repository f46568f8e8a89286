"""The GPU fast path: padded inputs change nothing, the capture policy and its bookkeeping
hold over an MD run (on a CPU, with a stand-in for the graph), and the CUDA-graph replay
equals the eager model over an MD run with neighbour-list reuse (on a GPU only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk, molecule

from mlff_distiller import InputError, StudentCalculator, keys
from mlff_distiller.data.graph import atoms_to_graph, collate
from mlff_distiller.md.cuda_graphs import (
    GraphedEnergyAndForces,
    PaddedInputs,
    compiled_for_graphs,
    pair_capacity,
)
from mlff_distiller.md.fast import FastForceField, fast_arguments
from mlff_distiller.md.verlet import StudentVerlet
from tests.conftest import perturbed_student
from tests.md.test_verlet import _hot_ether, _redrawn_student

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _structures():
    """A molecule (12 atoms) and a periodic cell (rattled diamond silicon, 64 atoms), both
    of a tiny student's elements."""
    crystal = bulk("Si", "diamond", a=5.43) * (2, 2, 2)
    crystal.rattle(0.05, seed=1)
    return [molecule("CH3CH2OCH3"), crystal]


@pytest.mark.parametrize("structure", [0, 1], ids=["molecule", "periodic"])
def test_padding_adds_exactly_nothing(structure):
    """Energy and forces on the padded inputs (a ghost atom, ghost pairs up to the capacity)
    equal those on the plain inputs, float64; a shorter pair list filled in afterwards turns
    the slots it leaves back into ghost pairs."""
    model = perturbed_student("tiny").double().eval()
    fast = FastForceField(model)
    atoms = _structures()[structure]
    graph = collate([atoms_to_graph(atoms, model.cutoff, dtype=torch.float64)])
    positions, species, pairs, shifts, batch, _ = fast_arguments(fast, graph)
    padded = PaddedInputs(len(atoms), pair_capacity(pairs.shape[1]) + 40, shifts is not None,
                          torch.float64, positions.device)
    for keep in (pairs.shape[1], pairs.shape[1] // 2):  # all pairs, then half (a new list)
        sub_pairs = pairs[:, :keep].clone()
        sub_shifts = None if shifts is None else shifts[:keep].clone()
        energy, forces = fast(positions, species, sub_pairs, sub_shifts, batch, 1)
        padded.fill(positions, species, sub_pairs, sub_shifts)
        assert int((padded.pairs[1, keep:] == len(atoms)).sum()) == padded.capacity - keep
        padded_energy, padded_forces = fast(padded.positions, padded.species, padded.pairs,
                                            padded.shift_vectors, padded.batch, 2)
        assert abs(float(padded_energy[0] - energy[0])) < 1e-10
        np.testing.assert_allclose(padded_forces[:len(atoms)].numpy(), forces.numpy(),
                                   rtol=0, atol=1e-12)


def test_padded_inputs_compile_once_more_for_a_second_size_then_reuse_it():
    """What compile=True records on a GPU (``compiled_for_graphs``), traced on the CPU with
    the aot_eager backend (dynamo and AOTAutograd without Inductor's code generation): the
    fast model on padded inputs equals the plain model for molecules of 12, 8 and 3 atoms,
    and after the second size (automatic dynamic shapes) the third compiles nothing."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    model = perturbed_student("tiny").float().eval()
    fast = FastForceField(model)
    compiled = compiled_for_graphs(fast, backend="aot_eager")
    graphs = []
    for name in ("CH3CH2OCH3", "CH3COOH", "H2O"):
        atoms = molecule(name)
        graph = collate([atoms_to_graph(atoms, model.cutoff)])
        positions, species, pairs, shifts, batch, _ = fast_arguments(fast, graph)
        padded = PaddedInputs(len(atoms), pair_capacity(pairs.shape[1]), False,
                              torch.float32, positions.device)
        padded.fill(positions, species, pairs, shifts)
        energy, forces = compiled(padded.positions, padded.species, padded.pairs, None,
                                  padded.batch, 2)
        plain_energy, plain_forces = fast(positions, species, pairs, shifts, batch, 1)
        assert abs(float(energy[0] - plain_energy[0])) < 1e-5 * max(1, abs(float(energy[0])))
        np.testing.assert_allclose(forces[:len(atoms)].numpy(), plain_forces.numpy(),
                                   rtol=0, atol=1e-5)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1] > graphs[0] and graphs[2] == graphs[1], graphs
    torch._dynamo.reset()


class _ReplayOnCPU:
    """Stand-in for a CUDA graph on a CPU (``GraphedEnergyAndForces._capture_graph``):
    ``replay`` runs the recorded call on the tensors it was captured with and writes its
    outputs in place, as a graph replay rewrites the captured outputs."""

    def __init__(self, call, args):
        self.call, self.args = call, args
        self.outputs = call(*args)

    def replay(self):
        for held, new in zip(self.outputs, self.call(*self.args), strict=True):
            held.copy_(new)


def _capture_on_cpu(call, args):
    graph = _ReplayOnCPU(call, args)
    return graph, graph.outputs


def _graphed_on_cpu(model) -> GraphedEnergyAndForces:
    graphed = GraphedEnergyAndForces(FastForceField(model))
    graphed._capture_graph = _capture_on_cpu
    return graphed


def test_capture_policy_first_call_eager_second_captures_growth_recaptures():
    """GraphedEnergyAndForces' bookkeeping on a CPU, float64, with a stand-in graph: a
    structure's first call runs eagerly and its second captures; fewer pairs replay the
    same graph, more pairs than its capacity capture at once; another molecule and a
    periodic cell each run eagerly once, then capture; every result equals the plain fast
    model to 1e-12 and is a new tensor."""
    model = perturbed_student("tiny").double().eval()
    graphed = _graphed_on_cpu(model)
    rng = np.random.default_rng(3)
    ether, crystal = _structures()
    expected_captures = []

    def check(atoms, keep=None):
        atoms = atoms.copy()
        atoms.positions += rng.normal(0, 0.01, (len(atoms), 3))
        graph = collate([atoms_to_graph(atoms, model.cutoff, dtype=torch.float64)])
        positions, species, pairs, shifts, batch, _ = fast_arguments(graphed.fast, graph)
        if keep is not None:
            pairs = pairs[:, :keep].clone()
            shifts = None if shifts is None else shifts[:keep].clone()
        energy, forces = graphed(positions, species, pairs, shifts, batch, 1)
        plain_energy, plain_forces = graphed.fast(positions, species, pairs, shifts, batch, 1)
        assert abs(float(energy[0] - plain_energy[0])) < 1e-12
        np.testing.assert_allclose(forces.numpy(), plain_forces.numpy(), rtol=0, atol=1e-12)
        forces.fill_(1e6)  # the caller's to keep: the next call must not see it
        expected_captures.append(graphed.captures)
        return pairs.shape[1]

    check(ether, keep=10)  # eager
    check(ether, keep=10)  # captures: capacity 64
    check(ether, keep=5)  # replays, the 5 slots left become ghost pairs again
    assert check(ether) <= 64  # all its pairs: replays
    check(crystal, keep=50)  # another structure: eager
    check(crystal, keep=50)  # captures: capacity 64
    assert check(crystal) > 64  # all its pairs: captures at once, no eager call
    check(crystal)
    check(molecule("CH3COOH"))  # eager
    check(molecule("CH3COOH"))  # captures
    assert expected_captures == [0, 1, 1, 1, 1, 2, 3, 3, 3, 4]


def test_graph_policy_over_md_with_list_reuse_on_cpu():
    """The GPU MD test's run on a CPU with the stand-in graph, float64: 100 NVE steps of
    hot methyl ethyl ether through StudentCalculator with its fast function swapped for
    GraphedEnergyAndForces, a margin list redrawn as pairs cross the cutoff: forces equal
    the eager model on a fresh graph to 1e-10 eV/Å, one capture serves the redraws."""
    model = _redrawn_student()
    calc = StudentCalculator(model)
    atoms = _hot_ether(1500.0)
    atoms.calc = calc
    atoms.get_forces()  # builds the calculator's fast model
    calc._fast_fn = graphed = GraphedEnergyAndForces(calc._fast_model)
    graphed._capture_graph = _capture_on_cpu
    dyn = StudentVerlet(atoms, timestep=0.5 * units.fs, margin=0.02, prune=False)
    worst = 0.0

    def check():
        nonlocal worst
        graph = atoms_to_graph(atoms, model.cutoff, dtype=torch.float64)
        eager = model(graph)[keys.FORCES].detach().numpy()
        worst = max(worst, float(np.abs(atoms.get_forces() - eager).max()))

    dyn.attach(check, interval=1)
    dyn.run(100)
    assert worst < 1e-10, worst
    assert dyn.fast_steps == 100 and dyn.list_draws > 2
    assert graphed.captures == 1


def test_cpu_inputs_are_an_input_error_at_the_first_capture():
    graphed = GraphedEnergyAndForces(FastForceField(perturbed_student("ultra-tiny").eval()))
    graph = collate([atoms_to_graph(molecule("H2O"), graphed.fast.cutoff)])
    args = fast_arguments(graphed.fast, graph)
    graphed(*args)  # a structure's first call runs eagerly, on any device
    with pytest.raises(InputError, match="a CUDA graph needs CUDA inputs; these are on cpu"):
        graphed(*args)


def test_pair_capacity_leaves_room_in_steps_of_64():
    for n in (0, 1, 63, 64, 1000, 51_200):
        capacity = pair_capacity(n)
        assert capacity % 64 == 0 and capacity >= max(1, n) * 1.25


@needs_cuda
@pytest.mark.parametrize(("dtype", "compiled"), [
    (torch.float32, False), (torch.float32, True), (torch.float64, True),
], ids=["float32-eager-kernels", "float32-torch-compile", "float64-torch-compile"])
def test_graph_replay_equals_the_eager_model_over_md_with_list_reuse(dtype, compiled):
    """The issue's check on a GPU: 100 NVE steps of hot methyl ethyl ether through
    StudentCalculator(device='cuda') (which replays a CUDA graph, of torch.compile's kernels
    with compile=True) with a margin list redrawn as pairs cross the cutoff, against the
    eager model on a fresh graph each step; one capture serves the redraws.

    float64: max |ΔF| < 1e-9 eV/Å (the padding and the compiled kernels change nothing but
    rounding). float32: < 1e-5 eV/Å + 1e-6 x the largest force: this perturbed student at
    1500 K reaches ~40 eV/Å, where one float32 ulp is 3.8e-6 and GPU atomic adds sum in
    no fixed order (seen on an H200: 1.5e-5 without compile, 1.9e-5 = 5 ulps with it;
    float64 with it: 8.5e-14)."""
    model = _redrawn_student().to(dtype)
    calc = StudentCalculator(model, device="cuda", compile=compiled)
    atoms = _hot_ether(1500.0)
    atoms.calc = calc
    dyn = StudentVerlet(atoms, timestep=0.5 * units.fs, margin=0.02, prune=False)
    eager_model = _redrawn_student().to(dtype).to("cuda")  # same weights
    worst, largest = 0.0, 0.0

    def check():
        nonlocal worst, largest
        graph = {k: v.to("cuda") for k, v in
                 atoms_to_graph(atoms, model.cutoff, dtype=dtype).items()}
        eager = eager_model(graph)[keys.FORCES].detach().cpu().numpy()
        worst = max(worst, float(np.abs(atoms.get_forces() - eager).max()))
        largest = max(largest, float(np.abs(eager).max()))

    dyn.attach(check, interval=1)
    dyn.run(100)
    fn = calc._fast_fn
    seen = (f"max |ΔF| {worst:.2e} eV/Å (max |F| {largest:.1f}), {dyn.fast_steps} fast steps, "
            f"{dyn.list_draws} list draws, {getattr(fn, 'captures', None)} captures, "
            f"compile_s {calc.compile_s:.1f}")
    print(seen)  # pytest -rP shows it
    assert worst < (1e-9 if dtype == torch.float64 else 1e-5 + 1e-6 * largest), seen
    assert isinstance(fn, GraphedEnergyAndForces) and fn.compiled == compiled, seen
    assert (calc.compile_s > 0) == compiled, seen
    assert dyn.fast_steps == 100 and dyn.list_draws > 2, seen
    assert fn.captures <= 2, seen


@needs_cuda
@pytest.mark.parametrize("compiled", [False, True], ids=["eager-kernels", "torch-compile"])
def test_graph_recaptures_when_pairs_outgrow_it_and_periodic_cells_work(compiled):
    """Another structure is captured anew on its second call (compiled anew with
    compile=True); molecule then crystal through one calculator, two geometries each (the
    first eager, the second replayed), all equal the eager model."""
    calc = StudentCalculator(perturbed_student("tiny").float().eval(), device="cuda",
                             compile=compiled)
    eager_model = perturbed_student("tiny").float().eval()  # the same weights, on the CPU
    for atoms in _structures():
        atoms.calc = calc
        for _ in range(2):
            atoms.positions += np.random.default_rng(len(atoms)).normal(0, 0.01, (len(atoms), 3))
            eager = eager_model(atoms_to_graph(atoms, eager_model.cutoff))
            np.testing.assert_allclose(atoms.get_forces(), eager[keys.FORCES].detach().numpy(),
                                       rtol=0, atol=1e-5)
            energy = float(eager[keys.ENERGY][0])
            assert abs(atoms.get_potential_energy() - energy) < 1e-6 * abs(energy) + 1e-4
    assert calc._fast_fn.captures == 2


def test_compiled_program_refuses_a_device_other_than_the_cpu():
    """AOTInductor's CUDA programs crashed the process at load (torch 2.11, H200): the
    compiled caller refuses any non-CPU input (a meta tensor stands in for CUDA here) with
    an error naming the fix, before building anything."""
    from mlff_distiller.md.fast import CompiledEnergyAndForces

    fast = FastForceField(perturbed_student("ultra-tiny").float().eval()).to("meta")
    positions = torch.zeros(3, 3, device="meta")
    species = torch.zeros(3, dtype=torch.long, device="meta")
    pairs = torch.zeros(2, 2, dtype=torch.long, device="meta")
    program = CompiledEnergyAndForces(fast)
    with pytest.raises(InputError, match=r"compile=True on meta.*CUDA graph.*compile=False"):
        program(positions, species, pairs, None, species, 1)
    assert program.compile_s == 0.0
