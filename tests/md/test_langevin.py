"""StudentLangevin: ASE's Langevin without its per-step bookkeeping, same trajectory."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms, FixCom, Hookean
from ase.md.langevin import Langevin

import mlff_distiller.md.verlet as verlet
from mlff_distiller import InputError, StudentCalculator, StudentLangevin, keys
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.md.runs import MDConfig, run_md
from tests.conftest import perturbed_student
from tests.md.test_verlet import (
    _hot_ether,
    _largest_difference,
    _redrawn_student,
    _stepwise_difference,
    _trajectory,
)

THERMOSTAT = {"temperature_K": 600.0, "friction": 0.02 / units.fs, "fixcm": False}


def _langevin(dynamics_class, atoms, calc, steps: int, every=None, **kwargs):
    """:func:`_trajectory` with a fresh random stream seeded alike for both integrators."""
    return _trajectory(dynamics_class, atoms, calc, steps, every=every,
                       rng=np.random.default_rng(7), **{**THERMOSTAT, **kwargs})


@pytest.mark.filterwarnings("ignore:The implementation of `fixcm=True`:FutureWarning")
@pytest.mark.parametrize("constraint", [None, "fixcom", "fixatoms", "fixcm"])
@pytest.mark.parametrize("compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_same_trajectory_as_ase_langevin(constraint, compile):
    """200 steps of hot methyl ethyl ether: positions, momenta, forces and energies of each
    step equal ASE's Langevin step from the same state and random numbers with the same
    calculator settings (:func:`~tests.md.test_verlet._stepwise_difference`),
    every step on the fast path, with no constraint, FixCom (as the MD runner's NVT),
    FixAtoms (positions and momenta constrained; the forces an MD step sees are not) or
    Langevin's own (deprecated) ``fixcm=True``; the margin list redrawn along the way."""
    model = _redrawn_student()
    atoms = _hot_ether()
    if constraint == "fixcom":
        atoms.set_constraint(FixCom())
    elif constraint == "fixatoms":
        atoms.set_constraint(FixAtoms(indices=[0, 3]))
    fixcm = {"fixcm": constraint == "fixcm"}
    ours, dyn = _langevin(StudentLangevin, atoms, StudentCalculator(model, compile=compile),
                          200, margin=0.05, **fixcm)  # a thin margin: redrawn more often
    reference = {**THERMOSTAT, **fixcm, "rng": np.random.default_rng(7)}
    assert _stepwise_difference(Langevin, atoms, StudentCalculator(model, compile=compile),
                                ours, **reference) < 1e-10
    assert dyn.fast_steps == 200 and dyn.list_draws >= 2
    if constraint == "fixatoms":
        np.testing.assert_array_equal(ours[-1][0][[0, 3]], atoms.positions[[0, 3]])


def test_forces_equal_a_fresh_neighbour_list_every_step():
    """The issue's check for NVT: max |ΔF| against the eager model on a fresh graph, over
    100 steps at 1500 K of a margin list redrawn as pairs cross the cutoff, below 1e-5 eV/Å
    + 1e-6 x the largest force. The thermostat drives forces up to about 12 eV/Å here,
    where float32's last bit is 1e-6 eV/Å: the two paths round differently (8.6e-6 on an
    AMD EPYC), and 1e-5 alone would test the CPU's rounding rather than the pairs."""
    model = _redrawn_student().float()
    worst = largest = 0.0

    def check(atoms, step):
        nonlocal worst, largest
        eager = model(atoms_to_graph(atoms, model.cutoff))[keys.FORCES].detach().double()
        worst = max(worst, float(np.abs(atoms.get_forces() - eager.numpy()).max()))
        largest = max(largest, float(np.abs(eager.numpy()).max()))

    atoms = _hot_ether(1500.0)
    _, dyn = _trajectory(StudentLangevin, atoms, StudentCalculator(model), 100, every=check,
                         margin=0.02, prune=False, rng=np.random.default_rng(0),
                         temperature_K=1500.0, friction=0.02 / units.fs, fixcm=False)
    assert worst < 1e-5 + 1e-6 * largest, f"max |ΔF| = {worst:.2e} eV/Å, |F| <= {largest:.1f}"
    assert largest > 1.0 and dyn.list_draws > 2


def test_other_calculators_and_force_constraints_take_ase_step():
    """EMT, and a constraint that changes the forces an MD step sees (Hookean): ASE's step,
    the same trajectory."""
    cluster = molecule("CH3CH2OCH3")
    cluster.set_chemical_symbols(["Cu"] * len(cluster))
    cluster.positions *= 2.0
    runs = [(cluster, EMT, EMT)]
    model = perturbed_student("tiny").double().eval()
    hooked = _hot_ether()
    hooked.set_constraint(Hookean(a1=0, a2=1, rt=1.6, k=5.0))
    runs.append((hooked, lambda: StudentCalculator(model), lambda: StudentCalculator(model)))
    for atoms, first, second in runs:
        ase_frames, _ = _langevin(Langevin, atoms, first(), 30)
        ours, dyn = _langevin(StudentLangevin, atoms, second(), 30)
        assert dyn.fast_steps == 0
        assert _largest_difference(ase_frames, ours) == 0.0


def test_run_md_nvt_uses_it_with_ases_results(monkeypatch):
    """The MD runner's NVT (FixCom, Langevin) takes StudentLangevin's fast step every step and
    gives the run that ASE's Langevin gives. (The perturbed student heats the molecule up:
    the watchdog's limits are widened so that both runs go the distance.) The two paths sum
    over their pairs in different orders, and this hot, perturbed run amplifies the
    rounding differences that leaves (~1e-14 eV at step 5) about tenfold every 10 steps after
    step 60, depending on the CPU's arithmetic: equality is checked over the first 60 steps,
    where it holds to 1e-12 eV, and the runs must both go the distance."""
    model = perturbed_student("tiny").double().eval()
    config = MDConfig(nvt_steps=150, temperature_K=500.0, sample_interval=10,
                      stretch_factor=10.0, min_distance_A=0.1, max_temperature_factor=100.0)
    fast_path_applies, answers = verlet._fast_path_applies, []

    def recorded(*args):
        answers.append(fast_path_applies(*args))
        return answers[-1]

    monkeypatch.setattr(verlet, "_fast_path_applies", recorded)
    fast = run_md(molecule("CH3CH2OCH3"), StudentCalculator(model), config, "nvt")
    assert len(answers) == 150 and all(answers)
    monkeypatch.setattr(verlet, "_fast_path_applies", lambda *args: False)
    slow = run_md(molecule("CH3CH2OCH3"), StudentCalculator(model), config, "nvt")
    assert fast["stable"] and fast["steps_done"] == slow["steps_done"] == 150
    for key in ("potential_eV", "kinetic_eV", "temperature_K"):  # every step
        np.testing.assert_allclose(fast[key][:61], slow[key][:61], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast["frames"][:7], slow["frames"][:7], rtol=0, atol=1e-9)


def test_bad_arguments_are_input_errors():
    atoms = molecule("H2O")
    atoms.calc = EMT()
    with pytest.raises(InputError, match="margin"):
        StudentLangevin(atoms, 0.5 * units.fs, margin=0.0, **THERMOSTAT)
    with pytest.raises(InputError, match="prune"):
        StudentLangevin(atoms, 0.5 * units.fs, prune="yes", **THERMOSTAT)
