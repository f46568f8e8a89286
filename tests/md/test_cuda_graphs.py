"""The GPU fast path: padded inputs change nothing (checked on a CPU), and the CUDA-graph
replay equals the eager model over an MD run with neighbour-list reuse (on a GPU only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk, molecule

from mlff_distiller import InputError, StudentCalculator, keys
from mlff_distiller.data.graph import atoms_to_graph, collate
from mlff_distiller.md.cuda_graphs import GraphedEnergyAndForces, PaddedInputs, pair_capacity
from mlff_distiller.md.fast import FastForceField, fast_arguments
from mlff_distiller.md.verlet import StudentVerlet
from tests.conftest import perturbed_student
from tests.md.test_verlet import _hot_ether

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


def test_pair_capacity_leaves_room_in_steps_of_64():
    for n in (0, 1, 63, 64, 1000, 51_200):
        capacity = pair_capacity(n)
        assert capacity % 64 == 0 and capacity >= max(1, n) * 1.25


@needs_cuda
def test_graph_replay_equals_the_eager_model_over_md_with_list_reuse():
    """The issue's check on a GPU: 100 NVE steps of hot methyl ethyl ether through
    StudentCalculator(device='cuda') (which replays a CUDA graph) with a margin list redrawn
    every few steps: max |ΔF| < 1e-5 eV/Å against the eager model on a fresh graph each step;
    one capture serves the redraws."""
    model = perturbed_student("tiny").float().eval()
    calc = StudentCalculator(model, device="cuda")
    atoms = _hot_ether(1500.0)
    atoms.calc = calc
    dyn = StudentVerlet(atoms, timestep=0.5 * units.fs, margin=0.02, prune=False)
    eager_model = perturbed_student("tiny").float().eval().to("cuda")  # same weights
    worst = 0.0

    def check():
        nonlocal worst
        graph = {k: v.to("cuda") for k, v in atoms_to_graph(atoms, model.cutoff).items()}
        eager = eager_model(graph)[keys.FORCES].detach().cpu()
        worst = max(worst, float(np.abs(atoms.get_forces() - eager.numpy()).max()))

    dyn.attach(check, interval=1)
    dyn.run(100)
    assert worst < 1e-5, f"max |ΔF| = {worst:.2e} eV/Å"
    assert isinstance(calc._fast_fn, GraphedEnergyAndForces)
    assert dyn.fast_steps == 100 and dyn.list_draws > 10
    assert calc._fast_fn.captures <= 2


@needs_cuda
def test_graph_recaptures_when_pairs_outgrow_it_and_periodic_cells_work():
    """A structure with more pairs than the capacity is captured anew; molecule then crystal
    through one calculator both equal the eager model."""
    calc = StudentCalculator(perturbed_student("tiny").float().eval(), device="cuda")
    eager_model = perturbed_student("tiny").float().eval()  # the same weights, on the CPU
    for atoms in _structures():
        atoms.calc = calc
        eager = eager_model(atoms_to_graph(atoms, eager_model.cutoff))
        np.testing.assert_allclose(atoms.get_forces(), eager[keys.FORCES].detach().numpy(),
                                   rtol=0, atol=1e-5)
        energy = float(eager[keys.ENERGY][0])
        assert abs(atoms.get_potential_energy() - energy) < 1e-6 * abs(energy) + 1e-4
    assert calc._fast_fn.captures == 2


@needs_cuda
def test_compile_on_cuda_is_an_input_error():
    with pytest.raises(InputError, match="compile=True with device='cuda'.*CUDA graph"):
        StudentCalculator(perturbed_student("ultra-tiny"), device="cuda", compile=True)


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
