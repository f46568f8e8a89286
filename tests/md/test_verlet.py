"""StudentVerlet: ASE's velocity Verlet without its per-step bookkeeping, same trajectory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.md.verlet import VelocityVerlet

from mlff_distiller import InputError, StudentCalculator, keys
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.md.velocities import maxwell_boltzmann
from mlff_distiller.md.verlet import StudentVerlet
from tests.conftest import perturbed_student


def _trajectory(dynamics_class, atoms, calc, steps: int, every=None, **kwargs) -> list:
    """(positions, momenta, forces, energy) after each of ``steps`` steps; ``every`` is an
    observer called on the atoms each step before recording (may change them)."""
    atoms = atoms.copy()
    atoms.calc = calc
    dyn = dynamics_class(atoms, timestep=0.5 * units.fs, **kwargs)
    frames = []

    def record():
        if every is not None:
            every(atoms, dyn.nsteps)
        frames.append((atoms.get_positions(), atoms.get_momenta(), atoms.get_forces(),
                       atoms.get_potential_energy()))

    dyn.attach(record, interval=1)
    dyn.run(steps)
    return frames, dyn


def _largest_difference(first: list, second: list) -> float:
    assert len(first) == len(second)
    return max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for x, y in zip(first, second, strict=True) for a, b in zip(x, y, strict=True))


def _stepwise_difference(reference_class, atoms, calc, frames: list, **kwargs) -> float:
    """Largest difference between each of ``frames`` but the first (positions, momenta,
    forces, energy at the start and after each step, as :func:`_trajectory` records them
    from ``atoms``) and one step of ``reference_class`` (ASE's integrator, built with
    ``kwargs``, on ``calc``) from the frame before it.

    Why step by step: a margin list holds pairs beyond the cutoff, which contribute exactly
    zero but move the others' places in the pair tensors; where the CPU's arithmetic
    rounds by place (vector body or remainder of a loop, row blocks of a matrix product),
    forces then differ in the last bit (1e-15 in float64, on an AMD EPYC), and a hot
    molecule's trajectory amplifies that about e-fold every 7 steps (5e-4 Å after 200).
    One step from the same state shows what the integrator does, any CPU. An integrator
    with random forces takes one generator in ``kwargs``, shared by the reference steps in
    turn, so each draws what the recorded step drew."""
    worst = 0.0
    positions, momenta = frames[0][0], frames[0][1]
    for frame in frames[1:]:
        system = atoms.copy()
        system.set_positions(positions, apply_constraint=False)
        system.set_momenta(momenta, apply_constraint=False)
        system.calc = calc
        reference_class(system, timestep=0.5 * units.fs, **kwargs).step()
        step = (system.get_positions(), system.get_momenta(), system.get_forces(),
                system.get_potential_energy())
        worst = max([worst] + [float(np.abs(np.asarray(a) - np.asarray(b)).max())
                               for a, b in zip(step, frame, strict=True)])
        positions, momenta = frame[0], frame[1]
    return worst


def _hot_ether(temperature_K: float = 600.0):
    """Methyl ethyl ether (12 atoms): 9 of its 66 pairs are beyond a tiny student's 4 Å
    cutoff + the 0.2 Å margin (none of which comes within 4 Å in a few hundred steps)."""
    atoms = molecule("CH3CH2OCH3")
    maxwell_boltzmann(atoms, temperature_K, np.random.default_rng(0))
    return atoms


REDRAWN_CUTOFF = 3.0  # Å: pairs of the hot ether cross it, so its margin list is redrawn


def _redrawn_student():
    """A float64 tiny student with a 3 Å cutoff: about a third of the hot ether's pairs are
    beyond it, and some come within it every few tens of steps (a redraw each time)."""
    return perturbed_student("tiny", cutoff=REDRAWN_CUTOFF).eval()


@pytest.mark.parametrize(("compile", "prune"), [
    (False, False), (False, True), (False, None),
    pytest.param(True, None, marks=pytest.mark.slow),
    pytest.param(True, False, marks=pytest.mark.slow),
    pytest.param(True, True, marks=pytest.mark.slow),
])
def test_same_trajectory_as_ase_velocity_verlet(compile, prune):
    """200 steps of hot methyl ethyl ether: positions, momenta, forces and energies of each
    step equal ASE's VelocityVerlet step from the same state with the same calculator
    settings (:func:`_stepwise_difference`), every step on the fast path,
    the margin list redrawn along the way or the list pruned every step. In float64: a margin
    list holds pairs beyond the cutoff (contributing exactly zero), which regroups float32
    sums, and MD amplifies a last-bit difference over 200 steps. Compiled, every step runs
    whole in the program (ASE's float64 operations there), most without numpy's positions
    first."""
    model = _redrawn_student()
    atoms = _hot_ether()
    calc = StudentCalculator(model, compile=compile)
    ours, dyn = _trajectory(StudentVerlet, atoms, calc, 200, prune=prune)
    assert _stepwise_difference(VelocityVerlet, atoms, StudentCalculator(model, compile=compile),
                                ours) < 1e-10
    assert dyn.fast_steps == 200
    assert dyn.program_steps == (200 if compile else 0)
    # a step goes straight to the program when the last one predicted it keeps the list
    # whole; a watched pair that came within the cutoff unforeseen is found by the program's
    # own check, and that step taken again on a redrawn list (nothing else changes the atoms
    # here); pruned steps never go straight to the program
    print(f"{dyn.list_draws} draws, {dyn.program_retries} retries")
    if not compile or prune is True:
        assert dyn.program_retries == 0
    else:
        assert dyn.program_retries <= dyn.list_draws - 1
    # a margin list, redrawn as pairs cross the cutoff (where pruning may take over), or
    # pruning, which takes its pairs from such a list
    assert 2 < dyn.list_draws < 200, dyn.list_draws


def test_pruned_float32_trajectory_is_ase_bit_for_bit():
    """Pruned each step, the student sees the calculator's own pair list: even in float32
    the trajectory is ASE's to the last bit."""
    model = perturbed_student("tiny").float().eval()
    ase_frames, _ = _trajectory(VelocityVerlet, _hot_ether(), StudentCalculator(model), 100)
    ours, _ = _trajectory(StudentVerlet, _hot_ether(), StudentCalculator(model), 100,
                          prune=True)
    assert _largest_difference(ase_frames, ours) == 0.0


@pytest.mark.parametrize("pruning_faster", [True, False, None])
def test_the_default_times_both_kinds_of_step_and_keeps_the_faster(pruning_faster):
    """prune=None: steps with the margin list, then (from a redraw) pruned ones, each timed,
    then the faster kind for good, each step ASE's step (float64). A clock under
    the test's control makes a pruned step take half or twice as long as a margin step;
    with the real clock (None) either may win, but a choice is made and held."""
    model = _redrawn_student()
    start = _hot_ether(900.0)
    atoms = start.copy()
    atoms.calc = StudentCalculator(model)
    dyn = StudentVerlet(atoms, timestep=0.5 * units.fs)
    now = [0.0]

    def clock():  # read at the start of each step: the step that just ended took...
        now[0] += (0.5 if pruning_faster else 2.0) if dyn._state.prune else 1.0
        return now[0]

    frames = []

    def record():
        if dyn.nsteps == 1 and pruning_faster is not None:  # the pair list exists now
            dyn._state.trial.clock = clock
        frames.append((atoms.get_positions(), atoms.get_momenta(), atoms.get_forces(),
                       atoms.get_potential_energy()))

    dyn.attach(record, interval=1)
    dyn.run(300)
    assert _stepwise_difference(VelocityVerlet, start, StudentCalculator(model), frames) < 1e-10
    state = dyn._state
    assert state.trial.chosen is state.prune  # decided
    if pruning_faster is not None:
        assert state.prune is pruning_faster
    margin_pairs = state._margin_list[0]
    if state.prune:  # the margin list's pairs now within the cutoff
        i, j = margin_pairs
        within = np.linalg.norm(atoms.positions[j] - atoms.positions[i], axis=1) < model.cutoff
        np.testing.assert_array_equal(state.pairs.numpy(), margin_pairs[:, within])
    else:  # the margin list back, whole
        np.testing.assert_array_equal(state.pairs.numpy(), margin_pairs)


def test_a_fixed_choice_is_never_timed():
    """prune=True or False: no trial, the list stays as asked."""
    model = perturbed_student("tiny").double().eval()
    for prune in (True, False):
        _, dyn = _trajectory(StudentVerlet, _hot_ether(900.0), StudentCalculator(model), 60,
                             prune=prune)
        assert dyn._state.trial is None and dyn._state.prune is prune


def test_a_list_of_every_pair_is_drawn_once():
    """Ethanol, all of whose pairs are within the cutoff: its margin list holds every pair,
    so it is never redrawn (a pair beyond the cutoff contributes exactly zero), and the
    trajectory is still ASE's, at 1500 K for 200 steps in float64."""
    model = perturbed_student("tiny").double().eval()
    atoms = molecule("CH3CH2OH")
    maxwell_boltzmann(atoms, 1500.0, np.random.default_rng(0))
    ase_frames, _ = _trajectory(VelocityVerlet, atoms, StudentCalculator(model), 200)
    ours, dyn = _trajectory(StudentVerlet, atoms, StudentCalculator(model), 200)
    assert _largest_difference(ase_frames, ours) < 1e-9
    assert dyn._state.complete and dyn.list_draws == 1 and dyn.fast_steps == 200
    _, ether = _trajectory(StudentVerlet, _hot_ether(), StudentCalculator(model), 1)
    assert not ether._state.complete  # 9 of its pairs are beyond cutoff + margin


def test_forces_equal_a_fresh_neighbour_list_every_step():
    """The issue's check: max |ΔF| < 1e-5 eV/Å against the eager model on a fresh graph,
    over 100 steps of list reuse at 1500 K, a margin list redrawn as pairs cross the
    cutoff and a pruned list on a Verlet list rebuilt every few steps."""
    model = _redrawn_student().float()
    worst = 0.0

    def check(atoms, step):
        nonlocal worst
        graph = atoms_to_graph(atoms, model.cutoff)
        eager = model(graph)[keys.FORCES].detach().double().numpy()
        worst = max(worst, float(np.abs(atoms.get_forces() - eager).max()))

    for prune, skin, all_pairs in ((False, 0.5, True), (True, 0.04, True), (True, 0.04, False)):
        calc = StudentCalculator(model, skin=skin)
        if not all_pairs:
            calc.neighbors.all_pairs_max_atoms = 0  # vesin's Verlet list, not all 66 pairs
        frames, dyn = _trajectory(StudentVerlet, _hot_ether(1500.0), calc, 100, every=check,
                                  margin=0.02, prune=prune)
        assert worst < 1e-5, f"prune={prune}: max |ΔF| = {worst:.2e} eV/Å"
        assert float(np.abs(frames[-1][2]).max()) > 0.5  # not a trivial model
        assert calc.neighbors.all_pairs == all_pairs
        assert dyn.list_draws > 2
    assert calc.neighbors.n_builds > 10  # the small skin made vesin's list rebuild


def test_a_margin_list_drawn_from_a_stale_verlet_list_misses_no_pair():
    """Two C atoms 4.51 Å apart, just beyond a tiny student's 4 Å cutoff + the calculator's
    0.5 Å skin, closing at 0.08 Å each per step. vesin's list, built at the start, is
    reused until an atom has moved skin / 2; a margin list (0.2 Å) drawn from it at step 3,
    0.24 Å on, must still hold every pair that can enter the cutoff before its next draw
    (the pair enters at step 4). Same trajectory as ASE's step, whose calculator draws its
    own list."""
    from ase import Atoms

    model = perturbed_student("tiny").double().eval()
    atoms = Atoms("C2", positions=[[0.0, 0.0, 0.0], [4.51, 0.0, 0.0]])
    speed = 0.08 / (0.5 * units.fs)  # Å per ASE time unit
    atoms.set_momenta(np.array([[speed, 0, 0], [-speed, 0, 0]]) * atoms.get_masses()[:, None])

    def vesin_calculator():
        calc = StudentCalculator(model)
        calc.neighbors.all_pairs_max_atoms = 0  # vesin's Verlet list, not all pairs
        return calc

    ase_frames, _ = _trajectory(VelocityVerlet, atoms, vesin_calculator(), 8)
    ours, dyn = _trajectory(StudentVerlet, atoms, vesin_calculator(), 8, margin=0.2)
    distances = [float(np.linalg.norm(frame[0][1] - frame[0][0])) for frame in ase_frames]
    assert distances[4] < model.cutoff < distances[3]  # the pair enters at step 4
    assert float(np.abs(ase_frames[-1][2]).max()) > 1e-3  # and pulls or pushes
    assert _largest_difference(ase_frames, ours) < 1e-9
    assert dyn.fast_steps == 8


def test_a_margin_list_is_redrawn_only_when_a_pair_it_lacks_enters_the_cutoff():
    """Three C atoms: 0 and 2 are 4.6 Å apart, 0.6 Å beyond a tiny student's cutoff (the
    one pair missing from the 0.2 Å margin list, watched every step); atom 1 is 2.5 Å from
    both. An observer moves atom 1 by 0.5 Å three times, then atom 0 towards atom 2 by 0.25
    and 0.3 Å (their pair is then 4.05 Å apart, still beyond the cutoff): nothing is
    redrawn. 0.1 Å more takes the pair within the cutoff: redrawn for that step. ASE's
    trajectory throughout."""
    from ase import Atoms

    model = perturbed_student("tiny").double().eval()
    atoms = Atoms("C3", positions=[[0.0, 0.0, 0.0], [2.3, 1.0, 0.0], [4.6, 0.0, 0.0]])
    moves = {1: (1, 2, 0.5), 2: (1, 2, -0.5), 3: (1, 2, 0.5), 4: (0, 0, 0.25),
             5: (0, 0, 0.3), 7: (0, 0, 0.1)}

    def meddle(atoms, step):
        if step in moves:
            atom, axis, distance = moves[step]
            positions = atoms.get_positions()
            positions[atom, axis] += distance
            atoms.set_positions(positions)

    ase_frames, _ = _trajectory(VelocityVerlet, atoms, StudentCalculator(model), 9,
                                every=meddle)
    distances = [float(np.linalg.norm(frame[0][2] - frame[0][0])) for frame in ase_frames]
    assert distances[6] > model.cutoff > distances[7]  # the pair enters for step 8
    draws = []  # margin lists drawn so far, after each step

    class Counted(StudentVerlet):
        def step(self, forces=None):
            result = super().step(forces)
            draws.append(self.list_draws)
            return result

    ours, dyn = _trajectory(Counted, atoms, StudentCalculator(model), 9, every=meddle,
                            margin=0.2)
    assert _largest_difference(ase_frames, ours) < 1e-9
    assert draws == [1, 1, 1, 1, 1, 1, 1, 2, 2]  # drawn for step 1, again for step 8
    assert dyn.fast_steps == 9


def _assert_followed_like_ase(meddle, steps: int, compile: bool = False) -> StudentVerlet:
    """StudentVerlet with the observer ``meddle`` gives ASE's trajectory, every step fast
    (a student whose margin list is redrawn along the way)."""
    model = _redrawn_student()
    ase_frames, _ = _trajectory(VelocityVerlet, _hot_ether(),
                                StudentCalculator(model, compile=compile), steps, every=meddle)
    ours, dyn = _trajectory(StudentVerlet, _hot_ether(),
                            StudentCalculator(model, compile=compile), steps, every=meddle)
    assert _largest_difference(ase_frames, ours) < 1e-9
    assert dyn.fast_steps == steps
    return dyn


COMPILE = ["compile", [False, pytest.param(True, marks=pytest.mark.slow)]]


@pytest.mark.parametrize(*COMPILE)
def test_changes_made_between_steps_are_followed(compile):
    """An observer that moves an atom and rescales the momenta every 7 steps: the fast
    path notices and follows the same trajectory as ASE's step."""

    def meddle(atoms, step):
        if step % 7 == 3:
            atoms.positions[0] += 0.05
            atoms.set_momenta(0.9 * atoms.get_momenta())

    dyn = _assert_followed_like_ase(meddle, 60, compile)
    assert dyn.program_steps == (60 if compile else 0)


@pytest.mark.slow
def test_compiled_step_checks_the_positions_it_used():
    """Compiled, a step goes straight to the program when the last one predicted that the
    list stays whole. Three C atoms, 0 and 2 4.6 Å apart (a pair watched by a tiny
    student's list, 4 Å cutoff): after quiet steps, an observer gives atom 0 a momentum
    that takes it 0.7 Å towards atom 2 in one step (the prediction knew the old momenta),
    within the cutoff: the program finds out from the positions it used, writes nothing,
    and the step is taken again on a redrawn list (then holding all three pairs, never
    redrawn again). ASE's trajectory throughout."""
    from ase import Atoms

    model = perturbed_student("tiny").double().eval()
    atoms = Atoms("C3", positions=[[0.0, 0.0, 0.0], [2.3, 1.0, 0.0], [4.6, 0.0, 0.0]])

    def kick(atoms, step):
        if step == 4:
            momenta = atoms.get_momenta()
            momenta[0] = [atoms.get_masses()[0] * 0.7 / (0.5 * units.fs), 0.0, 0.0]
            atoms.set_momenta(momenta)

    ase_frames, _ = _trajectory(VelocityVerlet, atoms, StudentCalculator(model, compile=True),
                                8, every=kick)
    distances = [float(np.linalg.norm(frame[0][2] - frame[0][0])) for frame in ase_frames]
    assert distances[4] > model.cutoff + 0.5 > model.cutoff > distances[5]  # step 5 enters
    ours, dyn = _trajectory(StudentVerlet, atoms, StudentCalculator(model, compile=True), 8,
                            every=kick)
    assert _largest_difference(ase_frames, ours) < 1e-9
    assert (dyn.program_steps, dyn.program_retries, dyn.list_draws) == (8, 1, 2)


@pytest.mark.parametrize(*COMPILE)
def test_masses_and_elements_changed_between_steps_are_followed(compile):
    """The fast step looks the masses up once from the numbers: an observer that gives the
    atoms masses of their own (deuterium, then heavier) and later turns a hydrogen into
    nitrogen must still give ASE's trajectory, masses included."""

    def meddle(atoms, step):
        if step == 5:
            masses = atoms.get_masses()
            masses[atoms.numbers == 1] = 2.014
            atoms.set_masses(masses)
        elif step == 12:
            atoms.arrays["masses"][0] *= 1.5  # in place, as ASE's set_masses also writes
        elif step == 20:
            del atoms.arrays["masses"]  # back to the elements' masses
        elif step == 27:
            atoms.numbers[np.flatnonzero(atoms.numbers == 1)[0]] = 7

    _assert_followed_like_ase(meddle, 40, compile)


def test_weights_changed_between_runs_are_used():
    model = perturbed_student("tiny").float().eval()
    atoms = _hot_ether()
    atoms.calc = StudentCalculator(model)
    dyn = StudentVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(5)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.1)
    dyn.run(1)
    eager = model(atoms_to_graph(atoms, model.cutoff))[keys.FORCES].detach().double().numpy()
    assert float(np.abs(atoms.get_forces() - eager).max()) < 1e-5


@pytest.mark.parametrize(("prune", "compile"), [
    (False, False), (True, False), pytest.param(None, True, marks=pytest.mark.slow)])
def test_periodic_cell_same_trajectory_as_ase(prune, compile):
    """A rattled silicon cell (2 x 1 x 1 diamond, pairs across the boundary), float64,
    100 steps at 600 K: ASE's trajectory, on the fast path (compiled: in the program, cell
    shifts included, of the watched pairs too), the list redrawn along the way."""
    model = perturbed_student("tiny").double().eval()
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.05, seed=0)
    maxwell_boltzmann(atoms, 600.0, np.random.default_rng(0))
    ase_frames, _ = _trajectory(VelocityVerlet, atoms, StudentCalculator(model, compile=compile),
                                100)
    ours, dyn = _trajectory(StudentVerlet, atoms, StudentCalculator(model, compile=compile), 100,
                            prune=prune)
    assert _largest_difference(ase_frames, ours) < 1e-9
    assert dyn.fast_steps == 100
    assert dyn.program_steps == (100 if compile else 0)
    assert dyn._state.shift_vectors is not None
    assert dyn.list_draws >= 2 and dyn._state._watch[0].shape[1] > 0


@pytest.mark.parametrize("case", ["constraint", "other calculator"])
def test_anything_else_takes_ase_step(case):
    """Constraints and other calculators run ASE's step unchanged."""
    atoms = _hot_ether()
    if case == "constraint":
        atoms.set_constraint(FixAtoms(indices=[0]))
    if case == "other calculator":
        atoms = molecule("CH3CH2OH")
        make = EMT
    else:
        model = perturbed_student("tiny").float().eval()
        make = lambda: StudentCalculator(model)  # noqa: E731
    ase_frames, _ = _trajectory(VelocityVerlet, atoms, make(), 20)
    ours, dyn = _trajectory(StudentVerlet, atoms, make(), 20)
    assert _largest_difference(ase_frames, ours) == 0.0
    assert dyn.fast_steps == 0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"margin": 0.0}, "margin"), ({"margin": -0.1}, "margin"),
    ({"margin": float("nan")}, "margin"), ({"prune": "yes"}, "prune"),
])
def test_bad_pair_list_settings_are_input_errors(kwargs, match):
    atoms = _hot_ether()
    with pytest.raises(InputError, match=match):
        StudentVerlet(atoms, timestep=0.5 * units.fs, **kwargs)


def test_exploding_positions_are_the_calculators_input_error():
    """Infinite momenta: the first step leaves the float range; the same clear error as
    through ASE's step (the calculator names the non-finite positions)."""
    model = perturbed_student("tiny").float().eval()
    atoms = molecule("CH3CH2OH")
    atoms.set_momenta(np.full((len(atoms), 3), np.inf))
    atoms.calc = StudentCalculator(model)
    with pytest.raises(InputError, match="NaN or inf"):
        StudentVerlet(atoms, timestep=0.5 * units.fs).run(2)


@pytest.mark.slow
def test_compiled_step_with_exploding_momenta_is_the_calculators_input_error():
    """Infinite momenta set between compiled steps: the program's positions are not finite,
    it writes nothing, and the step ends in the calculator's clear error as through ASE's."""
    model = perturbed_student("tiny").double().eval()
    atoms = _hot_ether()
    atoms.calc = StudentCalculator(model, compile=True)
    dyn = StudentVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(5)
    assert dyn.program_steps == 5
    atoms.set_momenta(np.full((len(atoms), 3), np.inf))
    with pytest.raises(InputError, match="NaN or inf"):
        dyn.run(2)


@pytest.mark.parametrize("prune", [False, True])
def test_cell_changed_between_steps_is_followed(prune):
    """An observer that squeezes the periodic cell a little every 15 steps, atoms left in
    place (no atom moves, so no displacement check can notice): the fast path's pairs and
    cell shifts must follow the new cell for the trajectory to stay ASE's."""

    def squeeze(atoms, step):
        if step % 15 == 7:
            atoms.set_cell(atoms.cell.array * 0.995, scale_atoms=False)

    model = perturbed_student("tiny").double().eval()
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.05, seed=0)
    maxwell_boltzmann(atoms, 600.0, np.random.default_rng(0))
    ase_frames, _ = _trajectory(VelocityVerlet, atoms, StudentCalculator(model), 50,
                                every=squeeze)
    ours, dyn = _trajectory(StudentVerlet, atoms, StudentCalculator(model), 50,
                            every=squeeze, prune=prune)
    assert _largest_difference(ase_frames, ours) < 1e-9
    assert dyn.fast_steps == 50
