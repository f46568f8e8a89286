"""MD on known potentials: drift measured, instability reported, optimisations compared."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron

from mlff_distiller.errors import InputError
from mlff_distiller.md.analysis import energy_drift
from mlff_distiller.md.compare import compare_distributions, compare_optimisations
from mlff_distiller.md.runs import MDConfig, optimise, run_md


class InversePair(Calculator):
    """E = strength * sum_{i<j} 1/r_ij: strength < 0 collapses atoms, > 0 blows them apart."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, strength: float, fail_after: int | None = None, nan_after=None):
        super().__init__()
        self.strength, self.fail_after, self.nan_after, self.calls = strength, fail_after, \
            nan_after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("model diverged")
        r = self.atoms.positions
        d = r[:, None, :] - r[None, :, :]
        dist = np.linalg.norm(d, axis=-1) + np.eye(len(r))
        e = self.strength * np.sum(np.triu(1 / dist, 1))
        f = self.strength * np.sum(d / dist[..., None] ** 3 * (1 - np.eye(len(r)))[..., None], 1)
        if self.nan_after is not None and self.calls > self.nan_after:
            e = float("nan")
        self.results = {"energy": e, "forces": f}


class LeakyEMT(EMT):
    """EMT whose energy gains ``leak`` eV on every evaluation: a planted, known drift."""

    def __init__(self, leak: float):
        super().__init__()
        self.leak, self.calls = leak, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["energy"] += self.leak * self.calls
        self.results["free_energy"] = self.results["energy"]
        self.calls += 1


def _nve_drift(calc, dt, steps=400):
    atoms = Icosahedron("Cu", 2)
    run = run_md(atoms, calc, MDConfig(timestep_fs=dt, nve_steps=steps), "nve")
    assert run["stable"], run["failure"]
    assert len(run["time_fs"]) == steps + 1
    e = run["potential_eV"] + run["kinetic_eV"]
    return energy_drift(run["time_fs"], e, len(atoms), dt, 300.0)


def test_nve_drift_small_for_small_step_larger_for_big_step():
    small = _nve_drift(EMT(), 0.5)
    big = _nve_drift(EMT(), 10.0)
    assert small["drift_percent_per_100_steps"] < 0.01
    assert small["fluctuation_eV_per_atom"] < 2e-5
    # velocity Verlet's energy error grows ~ dt^2: (10/0.5)^2 = 400
    assert big["fluctuation_eV_per_atom"] > 50 * small["fluctuation_eV_per_atom"]
    assert big["drift_percent_per_100_steps"] > 10 * small["drift_percent_per_100_steps"]


def test_planted_drift_is_measured():
    leak = 1e-4  # eV per step at 0.5 fs for 13 atoms
    measured = _nve_drift(LeakyEMT(leak), 0.5)["drift_eV_per_atom_per_ps"]
    assert measured == pytest.approx(leak / 0.5 * 1000 / 13, rel=0.05)


@pytest.mark.parametrize(
    "calc, reason",
    [
        (InversePair(-50.0), "apart"),  # collapse
        (InversePair(200.0), "stretched"),  # explosion
        (InversePair(0.0, fail_after=30), "calculator failed: RuntimeError"),
        (InversePair(0.0, nan_after=30), "non-finite"),
    ],
)
def test_instability_reported_with_step_not_raised(calc, reason):
    config = MDConfig(nvt_steps=300, nve_steps=300)
    for ensemble in ("nve", "nvt"):
        calc.calls = 0
        run = run_md(molecule("CH4"), calc, config, ensemble)
        assert not run["stable"]
        assert reason in run["failure"]["reason"]
        assert 0 < run["failure"]["step"] < 300
        assert run["failure"]["time_fs"] == pytest.approx(0.5 * run["failure"]["step"])
        assert len(run["potential_eV"]) <= run["failure"]["step"]


def test_temperature_runaway_detected():
    # a 1 fs^-1 Langevin friction pulls T to 300 K; a 20x lower limit flags it quickly
    config = MDConfig(nvt_steps=200, temperature_K=300.0, max_temperature_factor=0.05,
                      temperature_window=20, friction_per_fs=1.0)
    run = run_md(Icosahedron("Cu", 2), EMT(), config, "nvt")
    assert not run["stable"] and "temperature runaway" in run["failure"]["reason"]
    assert run["failure"]["step"] == 19  # the 20th sample (steps 0..19) fills the window


def test_stable_nvt_of_emt_cluster():
    run = run_md(Icosahedron("Cu", 2), EMT(), MDConfig(nvt_steps=300, sample_interval=50), "nvt")
    assert run["stable"] and run["failure"] is None
    assert run["frames"].shape == (7, 13, 3)


def test_optimisation_comparison_lj_two_sigmas():
    tri = molecule("H2O")  # 3 atoms; LJ relaxes to an equilateral triangle of side 2^(1/6) sigma
    tri.positions *= 1.3
    config = MDConfig(fmax=1e-4, max_opt_steps=2000, optimizer="BFGS")
    out = compare_optimisations([tri, tri], ["a", "a"], LennardJones(sigma=1.0),
                                LennardJones(sigma=1.1), config)
    row = out["structures"][0]
    assert row["student"]["converged"] and row["teacher"]["converged"]
    assert row["rmsd_A"] == pytest.approx(0.1 * 2 ** (1 / 6) / math.sqrt(3), rel=1e-3)
    assert row["energy_difference_eV"] == pytest.approx(0.0, abs=1e-6)  # both minima at -3 eps
    assert row["teacher_penalty_eV"] > 0.01
    assert out["summary"]["rmsd_max_A"] == pytest.approx(row["rmsd_A"], rel=1e-6)
    same = compare_optimisations([tri], ["a"], LennardJones(), LennardJones(), config)
    assert same["structures"][0]["rmsd_A"] < 1e-3


def test_conformer_order_judged():
    # three LJ pairs at different separations; with a plain and a shifted LJ cutoff the
    # relaxed energies order the same way and the order is reported as preserved
    starts = []
    for n in (2, 3, 4):
        atoms = Icosahedron("Ar", 2)[:n]
        starts.append(atoms)
    config = MDConfig(fmax=1e-3, max_opt_steps=500)
    out = compare_optimisations(starts, ["m"] * 3, LennardJones(sigma=3.4, epsilon=0.01,
                                                               rc=10.0),
                                LennardJones(sigma=3.6, epsilon=0.012, rc=10.0), config)
    order = out["conformer_order"]["m"]
    assert order["n_conformers"] == 3 and order["order_preserved"] is True
    assert order["spearman"] == pytest.approx(1.0)
    reversed_out = compare_optimisations(starts, ["m"] * 3, LennardJones(sigma=3.4,
                                         epsilon=0.01, rc=10.0),
                                         LennardJones(sigma=3.4, epsilon=-0.01, rc=10.0),
                                         MDConfig(fmax=1e-3, max_opt_steps=5))
    assert reversed_out["conformer_order"]["m"]["order_preserved"] is False


def test_optimise_never_raises():
    final, info = optimise(molecule("CH4"), InversePair(1.0, fail_after=3), MDConfig())
    assert not info["converged"] and "RuntimeError" in info["error"]
    assert len(final) == 5


def test_distributions_identical_and_shifted():
    w = molecule("H2O")
    rng = np.random.default_rng(0)
    frames = w.positions + 0.02 * rng.normal(size=(400, 3, 3))
    same = compare_distributions(w.numbers, w.positions, frames, frames)
    assert same["bonds_overlap"] == pytest.approx(1.0)
    assert same["angles"]["H-O-H"]["overlap"] == pytest.approx(1.0)
    stretched = compare_distributions(w.numbers, w.positions, frames * 1.3, frames)
    assert stretched["bonds_overlap"] < 0.05
    assert stretched["bonds"]["H-O"]["mean_difference"] > 0.2


def test_config_validation():
    with pytest.raises(InputError, match="timestep_fs"):
        MDConfig(timestep_fs=0)
    with pytest.raises(InputError, match="optimizer"):
        MDConfig(optimizer="LBFGS-X")
