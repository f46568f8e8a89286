"""The fast inference path (Verlet list, frozen model) equals the eager model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk, molecule
from ase.md.verlet import VelocityVerlet

from mlff_distiller import StudentCalculator, keys, testing
from mlff_distiller.data.graph import atoms_to_graph, collate
from mlff_distiller.data.neighbors import neighbor_list
from mlff_distiller.md.fast import (
    CPU_CHUNK_PAIRS,
    ChunkedEnergyAndForces,
    FastForceField,
    VerletNeighborList,
    batched_energy_and_forces,
    edges_from_pairs,
)
from mlff_distiller.md.velocities import maxwell_boltzmann
from mlff_distiller.models.painn import edge_pairs
from tests.conftest import perturbed_student


def _eager_forces(model, atoms) -> np.ndarray:
    graph = atoms_to_graph(atoms, model.cutoff, dtype=next(model.parameters()).dtype)
    return model(graph)[keys.FORCES].detach().double().numpy()


@pytest.mark.parametrize("all_pairs", [True, False])
def test_md_trajectory_fast_equals_eager_float32(all_pairs):
    """100 NVE steps on the fast path (neighbour list reused) vs the eager model each step,
    with the zoo's trained ``tiny`` student at 300 K. Float32 round-off differs between the
    two paths' summation orders, so both are also compared with the float64 model. The
    molecule's candidates are all its pairs, or (``all_pairs=False``) vesin's Verlet list.
    """
    from mlff_distiller import load_student

    model = load_student("sevennet-organic-tiny").float().eval()
    model64 = copy.deepcopy(model).double()
    atoms = molecule("CH3CH2OH")
    maxwell_boltzmann(atoms, 300.0, np.random.default_rng(0))
    calc = StudentCalculator(model)
    if not all_pairs:
        calc.neighbors.all_pairs_max_atoms = 0  # kept when the calculator remakes the list
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    worst, fast_err, eager_err, largest = 0.0, 0.0, 0.0, 0.0
    for _ in range(100):
        dyn.run(1)
        fast = atoms.get_forces()
        assert np.all(np.isfinite(fast))
        eager, exact = _eager_forces(model, atoms), _eager_forces(model64, atoms)
        worst = max(worst, float(np.abs(fast - eager).max()))
        fast_err = max(fast_err, float(np.abs(fast - exact).max()))
        eager_err = max(eager_err, float(np.abs(eager - exact).max()))
        largest = max(largest, float(np.abs(exact).max()))
    assert largest > 1.0, largest  # not a trivial model
    assert worst < 1e-5, f"max |ΔF| = {worst:.2e} eV/Å"
    assert fast_err < 2 * eager_err + 1e-6, (fast_err, eager_err)  # as accurate as eager
    assert calc.neighbors.all_pairs == all_pairs
    if all_pairs:  # every pair is a candidate wherever the atoms go: never rebuilt
        assert calc.neighbors.n_builds == 1
    else:
        assert 1 < calc.neighbors.n_builds < 60, calc.neighbors.n_builds  # reused, and rebuilt


def test_verlet_list_holds_every_pair_within_cutoff_until_rebuild():
    rng = np.random.default_rng(1)
    positions = rng.uniform(0, 6, size=(30, 3))
    cell, pbc = np.zeros((3, 3)), np.zeros(3, bool)
    nl = VerletNeighborList(cutoff=2.5, skin=0.4, all_pairs_max_atoms=0)  # vesin's list
    assert nl.update(positions, cell, pbc)
    assert not nl.all_pairs
    moved = positions + rng.uniform(-1, 1, size=positions.shape) * 0.19 / np.sqrt(3)
    assert not nl.update(moved, cell, pbc)  # every atom moved < skin / 2
    exact, _ = neighbor_list(moved, cell, pbc, 2.5)
    have = set(map(tuple, edges_from_pairs(nl.pairs, nl.pair_shift)[0].T))
    assert set(map(tuple, exact.T)) <= have
    pruned, shift = nl.pairs_within(moved, cell)  # the model only sees pairs within the cutoff
    assert 2 * pruned.shape[1] == exact.shape[1]  # each pair once
    assert set(map(tuple, edges_from_pairs(pruned, shift)[0].T)) == set(map(tuple, exact.T))
    moved[3] += [0.25, 0, 0]
    assert nl.update(moved, cell, pbc) and nl.n_builds == 2
    assert nl.update(moved, np.eye(3) * 20, np.ones(3, bool))  # cell change rebuilds


def test_update_within_keeps_every_pair_within_cutoff_plus_within():
    """update(within=w) rebuilds once an atom moved more than (skin - w) / 2, so the list
    holds every pair within cutoff + w, and every pair it lacks is at least
    unlisted_beyond() beyond the cutoff; a bad ``within`` is an input error."""
    from mlff_distiller import InputError

    rng = np.random.default_rng(2)
    positions = rng.uniform(0, 7, size=(40, 3))
    cell, pbc = np.zeros((3, 3)), np.zeros(3, bool)
    nl = VerletNeighborList(cutoff=2.5, skin=0.4, all_pairs_max_atoms=0)
    assert nl.update(positions, cell, pbc, within=0.2) and nl.unlisted_beyond() == 0.4
    step = np.zeros_like(positions)
    step[::2] = rng.normal(size=(20, 3))
    step *= 0.04 / np.linalg.norm(step, axis=1, keepdims=True).clip(1e-12)  # 0.04 Å moves
    builds = []
    for _ in range(12):
        positions = positions + step * rng.choice([-1, 1], size=(40, 1))
        nl.update(positions, cell, pbc, within=0.2)
        builds.append(nl.n_builds)
        moved = np.sqrt(((positions - nl._positions) ** 2).sum(1).max())
        assert moved <= 0.1 + 1e-12  # (skin - within) / 2
        assert nl.unlisted_beyond() == pytest.approx(0.4 - 2 * moved)
        listed = _pair_set(nl.pairs)
        lengths = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        for i, j in zip(*np.triu_indices(40, 1), strict=True):
            if (i, j) not in listed:
                assert lengths[i, j] >= 2.5 + nl.unlisted_beyond() - 1e-12
                assert lengths[i, j] >= 2.5 + 0.2
    assert 2 < builds[-1] < 10  # moves add up past 0.1 Å: rebuilt, yet not every time
    nl.update(positions, cell, pbc, within=0.4)  # within the skin: as moved as it may be
    assert nl.unlisted_beyond() == 0.4
    for bad in (-0.1, 0.5):
        with pytest.raises(InputError, match=r"within=.* Å \(expected between 0 and the skin"):
            nl.update(positions, cell, pbc, within=bad)
    everything = VerletNeighborList(cutoff=2.5, skin=0.4, all_pairs_max_atoms=64)
    everything.update(positions, cell, pbc, within=0.4)
    assert everything.unlisted_beyond() == np.inf


def _pair_set(pairs: np.ndarray) -> set:
    return set(map(tuple, pairs.T.tolist()))


def test_a_small_molecule_takes_all_its_pairs_as_candidates():
    """Up to all_pairs_max_atoms atoms without a periodic axis: every pair is a candidate,
    never rebuilt however far the atoms move, and the pairs within any margin equal a fresh
    vesin list; pbc or a new atom count rebuilds; larger molecules go to vesin."""
    rng = np.random.default_rng(4)
    positions = rng.uniform(0, 7, size=(12, 3))
    cell, pbc = np.zeros((3, 3)), np.zeros(3, bool)
    nl = VerletNeighborList(cutoff=2.5, skin=0.4, all_pairs_max_atoms=12)
    assert nl.update(positions, cell, pbc) and nl.all_pairs
    assert _pair_set(nl.pairs) == {(i, j) for i in range(12) for j in range(i + 1, 12)}
    for _ in range(3):  # 1 Å moves: far beyond what a Verlet skin of 0.4 Å would allow
        positions = positions + rng.uniform(-1, 1, size=positions.shape)
        assert not nl.update(positions, np.eye(3) * 5, pbc)  # a molecule's cell is ignored
        for margin in (0.0, 0.3):
            fresh, _ = neighbor_list(positions, cell, pbc, 2.5 + margin, full_list=False)
            pairs, shift = nl.pairs_within(positions, cell, margin)
            assert _pair_set(pairs) == _pair_set(fresh) and len(fresh.T) < 66
            assert shift.shape == (pairs.shape[1], 3) and not shift.any()
    assert nl.n_builds == 1
    assert nl.update(positions[:11], cell, pbc) and nl.all_pairs  # a new atom count
    assert nl.update(positions[:11], np.eye(3) * 9, np.ones(3, bool))  # periodic: vesin
    assert not nl.all_pairs and nl.n_builds == 3
    assert nl.update(positions, cell, pbc) and nl.all_pairs  # molecule again, 12 atoms
    larger = VerletNeighborList(cutoff=2.5, skin=0.4, all_pairs_max_atoms=11)
    assert larger.update(positions, cell, pbc) and not larger.all_pairs
    fresh, _ = neighbor_list(positions, cell, pbc, 2.9, full_list=False)
    assert _pair_set(larger.pairs) == _pair_set(fresh)


@pytest.mark.parametrize("bad", [-1, 1.5, "64", None])
def test_all_pairs_max_atoms_must_be_a_count(bad):
    from mlff_distiller import InputError

    with pytest.raises(InputError, match=r"all_pairs_max_atoms=.*expected an integer >= 0"):
        VerletNeighborList(cutoff=2.5, all_pairs_max_atoms=bad)


def test_pairs_within_hands_back_the_candidates_when_none_is_pruned():
    """All candidates within the cutoff: the same arrays (the calculator then reuses the
    tensor it made from them); one pair leaving the cutoff: a new, pruned list."""
    positions = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.2, 0]])
    cell, pbc = np.zeros((3, 3)), np.zeros(3, bool)
    nl = VerletNeighborList(cutoff=2.0, skin=0.6)
    nl.update(positions, cell, pbc)
    assert nl.pairs_within(positions, cell)[0] is nl.pairs
    moved = positions + [[0, 0, 0], [0.29, 0, 0], [0, 0, 0]]  # 1.29 Å: no rebuild
    assert not nl.update(moved, cell, pbc)
    assert nl.pairs_within(moved, cell)[0] is nl.pairs
    stretched = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.2, 0]])
    stretched[1, 0] = 2.1
    nl = VerletNeighborList(cutoff=2.0, skin=0.6)
    nl.update(stretched, cell, pbc)  # 0-1 at 2.1 Å, 1-2 at 2.42 Å: candidates beyond 2 Å
    assert nl.pairs.shape == (2, 3)
    pruned, shift = nl.pairs_within(stretched, cell)
    assert pruned is not nl.pairs and shift.shape == (1, 3)
    assert pruned.T.tolist() == [[0, 2]]


def test_periodic_pruned_edges_equal_a_fresh_list():
    si = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    nl = VerletNeighborList(cutoff=3.0, skin=0.6)
    nl.update(si.positions, si.cell.array, si.pbc)
    moved = si.positions + np.random.default_rng(3).uniform(-0.17, 0.17, si.positions.shape)
    assert not nl.update(moved, si.cell.array, si.pbc)
    index, shift = edges_from_pairs(*nl.pairs_within(moved, si.cell.array))
    ref_index, ref_shift = neighbor_list(moved, si.cell.array, si.pbc, 3.0)
    ours = sorted(zip(*index, *shift.T.astype(int), strict=True))
    assert ours == sorted(zip(*ref_index, *ref_shift.T.astype(int), strict=True))
    # the candidates' lengths, computed once, give the same lists for any margin
    lengths = nl.squared_lengths(moved, si.cell.array)
    i, j = nl.pairs
    explicit = moved[j] - moved[i] + nl.pair_shift @ si.cell.array
    np.testing.assert_allclose(lengths, (explicit**2).sum(1), rtol=1e-12)
    for margin in (0.0, 0.3):
        for given, fresh in zip(nl.pairs_within(moved, si.cell.array, margin, lengths),
                                nl.pairs_within(moved, si.cell.array, margin), strict=True):
            np.testing.assert_array_equal(given, fresh)


def test_pairs_from_edges_keeps_each_periodic_pair_once():
    """Small cell, long cutoff: atoms see their own images, whose pairs are (i, i, +-S)."""
    si = bulk("Si", "diamond", a=5.43)
    index, shift = neighbor_list(si.positions, si.cell.array, si.pbc, 6.0)
    assert (index[0] == index[1]).any()
    pairs, pair_shift = edge_pairs(torch.as_tensor(index), torch.as_tensor(shift))
    assert 2 * pairs.shape[1] == index.shape[1]
    back = edges_from_pairs(pairs.numpy(), pair_shift.numpy())
    ours = sorted(zip(*back[0], *back[1].T.astype(int), strict=True))
    assert ours == sorted(zip(*index, *shift.T.astype(int), strict=True))


def test_fast_check_state_agrees_with_ase():
    from ase.calculators.calculator import compare_atoms

    model = perturbed_student("ultra-tiny")
    atoms = molecule("CH3CH2OH")
    maxwell_boltzmann(atoms, 300.0, np.random.default_rng(0))
    atoms.calc = StudentCalculator(model)
    atoms.get_forces()
    calc = atoms.calc
    changed = atoms.copy()
    assert calc.check_state(changed) == []
    changed.set_momenta(changed.get_momenta() * 2)  # not a system change in ASE
    assert calc.check_state(changed) == []
    for edit in (lambda a: a.positions.__iadd__(1e-9), lambda a: a.numbers.__setitem__(0, 7),
                 lambda a: a.set_cell(np.eye(3) * 9), lambda a: a.set_pbc(True),
                 lambda a: a.set_initial_charges(np.ones(len(a))),
                 lambda a: a.set_initial_magnetic_moments(np.ones(len(a)))):
        other = atoms.copy()
        edit(other)
        assert sorted(calc.check_state(other)) == sorted(compare_atoms(calc.atoms, other))


def test_nan_positions_after_a_good_step_are_an_input_error():
    from mlff_distiller import InputError

    atoms = molecule("H2O")
    atoms.calc = StudentCalculator(perturbed_student("ultra-tiny"))
    atoms.get_forces()
    atoms.positions[1, 2] = np.nan
    with pytest.raises(InputError, match=r"H2O.*NaN.*atom\(s\) \[1\]"):
        atoms.get_forces()


def test_periodic_fast_path_forces_and_stress_equal_eager(student64):
    si = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    si.rattle(0.05, seed=0)
    calc = StudentCalculator(student64, skin=0.5)
    testing.assert_calculator_matches_model(calc, student64, si, atol=1e-9)
    si.positions[0] += 0.1  # within the skin: reuse the list
    testing.assert_calculator_matches_model(calc, student64, si, atol=1e-9)
    assert calc.neighbors.n_builds == 1


def test_fast_model_scripted_and_batched_equal_eager(student64):
    fast = torch.jit.script(FastForceField(student64))
    mols = [molecule("H2O"), molecule("CH3CONH2")]
    graph = collate([atoms_to_graph(m, student64.cutoff, dtype=torch.float64) for m in mols])
    species = student64.energy_model.element_index(graph[keys.ATOMIC_NUMBERS])
    pairs, _ = edge_pairs(graph[keys.EDGE_INDEX])
    energy, forces = fast(graph[keys.POSITIONS], species, pairs, None, graph[keys.BATCH], 2)
    ref = student64(graph)
    torch.testing.assert_close(energy, ref[keys.ENERGY].detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(forces, ref[keys.FORCES], rtol=0, atol=1e-10)


def _mixed_batch(model):
    """Molecules and a periodic crystal in one collated graph, float64; (args, graph):
    args as FastForceField.forward takes them, pairs in shuffled order."""
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=1)
    structures = [molecule("H2O"), molecule("CH3CONH2"), si, molecule("CH4"), molecule("C6H6")]
    graph = collate([atoms_to_graph(s, model.cutoff, dtype=torch.float64) for s in structures])
    pairs, pair_shift = edge_pairs(graph[keys.EDGE_INDEX], graph[keys.EDGE_SHIFT])
    order = torch.randperm(pairs.shape[1], generator=torch.Generator().manual_seed(0))
    pairs, pair_shift = pairs[:, order], pair_shift[order]
    cells = graph[keys.CELL][graph[keys.BATCH][pairs[0]]]
    shift_vectors = torch.einsum("pk,pkj->pj", pair_shift, cells)
    species = model.energy_model.element_index(graph[keys.ATOMIC_NUMBERS])
    args = (graph[keys.POSITIONS], species, pairs, shift_vectors, graph[keys.BATCH],
            len(structures))
    return args, graph


@pytest.mark.parametrize("max_pairs", [1, 40, 100, None])
def test_chunked_batch_equals_one_call_and_eager(student64, max_pairs):
    args, graph = _mixed_batch(student64)
    fast = FastForceField(student64)
    calls = []

    def recording(*a):
        calls.append((a[2].shape[1], a[5]))
        return fast(*a)

    energy, forces = ChunkedEnergyAndForces(recording, max_pairs)(*args)
    ref = student64(graph)
    torch.testing.assert_close(energy, ref[keys.ENERGY].detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(forces, ref[keys.FORCES], rtol=0, atol=1e-10)
    assert sum(n for _, n in calls) == 5 and sum(p for p, _ in calls) == args[2].shape[1]
    # every call within the budget unless it holds a single structure
    assert all(p <= (max_pairs or p) or n == 1 for p, n in calls)
    expected_calls = {1: 5, None: 1}.get(max_pairs)
    assert expected_calls is None or len(calls) == expected_calls
    if max_pairs in (40, 100):
        assert 1 < len(calls) < 5


def test_chunked_batch_needs_contiguous_structures(student64):
    from mlff_distiller import InputError

    positions, species, pairs, shift_vectors, batch, n = _mixed_batch(student64)[0]
    chunked = ChunkedEnergyAndForces(FastForceField(student64), 40)
    with pytest.raises(InputError, match="non-decreasing"):
        chunked(positions, species, pairs, shift_vectors, batch.flip(0), n)
    with pytest.raises(InputError, match="max_pairs"):
        ChunkedEnergyAndForces(FastForceField(student64), 0)


@pytest.mark.slow
def test_compiled_batch_equals_eager_one_structure_per_call(student64):
    """``batched_energy_and_forces(compile=True)``: molecules and a crystal in one batch
    (pairs shuffled, shift vectors for all) through the AOTInductor program, each structure
    in a call of its own, equal the eager model in float64."""
    args, graph = _mixed_batch(student64)
    batched = batched_energy_and_forces(FastForceField(student64), compile=True)
    energy, forces = batched(*args)
    ref = student64(graph)
    torch.testing.assert_close(energy, ref[keys.ENERGY].detach(), rtol=0, atol=1e-9)
    torch.testing.assert_close(forces, ref[keys.FORCES], rtol=0, atol=1e-9)
    compiled = batched.fn
    assert compiled.compile_s > 0 and sorted(compiled._programs) == [True]
    calls = []
    program = compiled._programs[True]
    compiled._programs[True] = lambda inputs: calls.append(inputs[0].shape[0]) or program(inputs)
    _, again = batched(*args)
    assert calls == [3, 9, 2, 5, 12]  # atoms of each structure, in order
    torch.testing.assert_close(again, forces, rtol=0, atol=0)


def test_batched_path_arguments(student64):
    """The eager batched path groups whole structures on a CPU and takes the whole batch
    in one call elsewhere; ``compile=True`` is CPU-only and one structure per call, and
    says so."""
    from mlff_distiller import InputError

    fast = FastForceField(student64)
    assert batched_energy_and_forces(fast).max_pairs == CPU_CHUNK_PAIRS
    assert batched_energy_and_forces(fast, max_pairs=None).max_pairs is None
    assert batched_energy_and_forces(copy.deepcopy(fast).to("meta")).max_pairs is None
    with pytest.raises(InputError, match=r"max_pairs=50 with compile=True.*one structure"):
        batched_energy_and_forces(fast, compile=True, max_pairs=50)
    with pytest.raises(InputError, match=r"max_pairs='many'.*'auto'"):
        batched_energy_and_forces(fast, max_pairs="many")
    with pytest.raises(InputError, match=r"compile=True for a batch.*on meta.*leave compile off"):
        batched_energy_and_forces(copy.deepcopy(fast).to("meta"), compile=True)


def test_fast_model_is_a_frozen_copy(student64):
    fast = FastForceField(student64)
    assert not any(p.requires_grad for p in fast.parameters())
    assert all(p.requires_grad for p in student64.parameters())
    assert fast.energy_model.state_dict().keys() == student64.energy_model.state_dict().keys()


def test_first_message_reads_the_per_element_table(student64):
    """The first message's context network sees only the element: the fast model holds it
    as a table (n_elements, 3F) and uses it (the scripted/batched test checks the result)."""
    fast = FastForceField(student64)
    embedding = student64.energy_model.embedding.weight
    expected = student64.energy_model.messages[0].context(embedding).detach()
    torch.testing.assert_close(fast.first_context, expected, rtol=0, atol=0)
    atoms = molecule("CH3CONH2")
    pairs, _ = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, fast.cutoff,
                             full_list=False)
    args = (torch.tensor(atoms.positions), fast.species(torch.tensor(atoms.numbers)),
            torch.as_tensor(pairs), None, torch.zeros(len(atoms), dtype=torch.long), 1)
    before = fast(*args)[0]
    with torch.no_grad():
        fast.first_context.add_(0.1)
    assert not torch.allclose(fast(*args)[0], before)


def test_eager_calculator_still_available(student64):
    atoms = molecule("CH4")
    atoms.rattle(0.05, seed=2)
    calc = StudentCalculator(student64, fast=False)
    testing.assert_calculator_matches_model(calc, student64, atoms, atol=1e-12)


@pytest.mark.parametrize("skin", [-0.1, float("nan")])
def test_bad_skin_is_an_input_error(skin):
    from mlff_distiller import InputError

    with pytest.raises(InputError, match="skin"):
        VerletNeighborList(5.0, skin)


def test_calculator_sees_weights_changed_in_place():
    model = perturbed_student("ultra-tiny")
    atoms = molecule("H2O")
    calc = StudentCalculator(model)
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    with torch.no_grad():
        model.energy_model.element_energies.add_(1.0)
    atoms.positions[0] += 1e-3  # a new geometry, so ASE asks again
    assert atoms.get_potential_energy() == pytest.approx(e0 + 3.0, abs=1e-3)


def test_compile_failure_is_a_clear_error(monkeypatch):
    """A failed AOTInductor build (here: no C++ compiler) names the cause and the way out."""
    import torch._inductor

    def no_compiler(*args, **kwargs):
        raise FileNotFoundError("g++: not found")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compiler)
    atoms = molecule("H2O")
    atoms.calc = StudentCalculator(perturbed_student("ultra-tiny").float(), compile=True)
    with pytest.raises(RuntimeError, match=r"g\+\+: not found.*compile=False"):
        atoms.get_forces()


def test_a_program_that_differs_from_the_eager_step_is_an_error():
    """Every compiled program is run once on the tracing inputs against VerletStep run
    eagerly: one returning zero forces (as torch 2.13's Inductor once built) is refused with
    a clear error, the eager step's own results pass."""
    from mlff_distiller.md.fast import CompiledEnergyAndForces, VerletStep, _example_inputs

    fast = FastForceField(perturbed_student("ultra-tiny").float())
    compiled = CompiledEnergyAndForces(fast)
    like = torch.empty(0)

    def eager(inputs):
        return [t.detach() for t in VerletStep(fast)(*inputs)]

    def zero_forces(inputs):
        forces, *rest = eager(inputs)
        return [torch.zeros_like(forces), *rest]

    assert float(eager(_example_inputs(fast, False, like))[0].abs().max()) > 1e-3
    compiled._check_program(eager, False, like)
    with pytest.raises(RuntimeError, match=r"program whose forces differ.*compile=False"):
        compiled._check_program(zero_forces, False, like)


def test_the_step_watches_the_pairs_its_list_lacks():
    """VerletStep's reach used: below 1 while every watched pair is beyond its limit (the
    squared cutoff), at least 1 once one is within it, whatever the atoms' moves; a
    placeholder pair (limit 0) never counts; the prediction for the next step counts the
    moves alone."""
    from mlff_distiller.md.fast import VerletStep

    fast = FastForceField(perturbed_student("ultra-tiny"))
    step = VerletStep(fast)
    cutoff = fast.cutoff
    positions = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [cutoff + 0.3, 0.0, 0.0]],
                             dtype=torch.float64)
    species = torch.zeros(3, dtype=torch.long)
    pairs = torch.tensor([[0, 1], [1, 2]])  # (0, 1) and (1, 2); (0, 2) is watched
    zeros = torch.zeros(3, 3, dtype=torch.float64)
    rest = (torch.ones(3, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
            positions.clone(), torch.zeros(3, dtype=torch.float64))

    def used(at, watch, limits):
        scalars = step(at, zeros, zeros, *rest, watch, limits, species, pairs)[3]
        return float(scalars[1]), float(scalars[2])

    watch, limit = torch.tensor([[0], [2]]), torch.tensor([cutoff**2], dtype=torch.float64)
    assert used(positions, watch, limit)[0] == pytest.approx(cutoff**2 / (cutoff + 0.3)**2)
    closer = positions.clone()
    closer[2, 0] = cutoff - 0.1
    now, upcoming = used(closer, watch, limit)
    assert now >= 1.0 and upcoming == 0.0  # the moves alone: reach weights of 0
    assert used(closer, watch, torch.zeros(1, dtype=torch.float64)) == (0.0, 0.0)


@pytest.mark.slow
def test_compiled_calculator_equals_eager_float32():
    """AOTInductor-compiled energy + forces equal the eager model: two molecule sizes on one
    program, a periodic cell on the second, a lone atom (no pairs) on the fallback, and 2
    threads for the matrix products."""
    from mlff_distiller.md.fast import CompiledEnergyAndForces

    model = perturbed_student("ultra-tiny").float().eval()
    calc = StudentCalculator(model, compile=True)
    silicon = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    structures = [molecule("CH3CH2OH"), molecule("C6H6"), silicon, molecule("H")]
    for seed, atoms in enumerate(structures):
        atoms.rattle(0.05, seed=seed)
        atoms.calc = calc
        fast = atoms.get_forces()
        assert float(np.abs(fast - _eager_forces(model, atoms)).max()) < 1e-5, seed
    compiled = calc._fast_fn
    assert isinstance(compiled, CompiledEnergyAndForces)
    assert sorted(compiled._programs) == [False, True]  # a molecule and a periodic program
    assert compiled.compile_s > 0
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        atoms = structures[1]
        atoms.positions[0] += 0.01
        fast = atoms.get_forces()
    finally:
        torch.set_num_threads(threads)
    assert float(np.abs(fast - _eager_forces(model, atoms)).max()) < 1e-5
