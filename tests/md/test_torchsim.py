"""torch-sim adapter: passes torch-sim's own validator; batched NVT runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from tests.conftest import perturbed_student


def test_student_passes_torchsim_validate_model_outputs():
    from torch_sim.models.interface import validate_model_outputs

    from mlff_distiller.md.torchsim import StudentModel

    model = StudentModel(perturbed_student("ultra-tiny", elements=(1, 6, 8, 14, 26)))
    validate_model_outputs(model, torch.device("cpu"), torch.float64)


def test_torchsim_matches_student_calculator():
    import torch_sim as ts

    from mlff_distiller.md.calculator import StudentCalculator
    from mlff_distiller.md.torchsim import StudentModel

    student = perturbed_student("ultra-tiny", elements=(1, 6, 8))
    mols = [molecule("CH3CH2OH"), molecule("H2O")]
    out = StudentModel(student)(ts.io.atoms_to_state(mols, torch.device("cpu"), torch.float64))
    start = 0
    for k, atoms in enumerate(mols):
        atoms.calc = StudentCalculator(student)
        assert float(out["energy"][k]) == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(out["forces"][start:start + len(atoms)].numpy(),
                                   atoms.get_forces(), atol=1e-8)
        start += len(atoms)


def test_batched_nvt_runs():
    from mlff_distiller.md.torchsim import run_nvt

    student = perturbed_student("ultra-tiny", elements=(1, 6, 8))
    r = run_nvt(student, [molecule("H2O"), molecule("CH4")], steps=5, temperature=300.0)
    assert len(r["structures"]) == 2 and r["steps"] == 5
    assert all(np.isfinite(r["temperature_K"])) and all(np.isfinite(r["energy_eV"]))


def test_batched_nvt_holds_molecules_at_the_temperature_asked():
    """Physics of ``run_nvt`` with a trained student: 8 ethanols in Langevin NVT at 300 K
    for 150 fs stay bonded and end near 300 K (with the time step 98x too long, as torch-sim
    was once given it, they flew apart into atoms at millions of kelvin within 10 steps)."""
    from mlff_distiller.md.torchsim import run_nvt
    from mlff_distiller.models.checkpoint import load_student

    student = load_student("sevennet-organic-ultra-tiny")
    mols = [molecule("CH3CH2OH") for _ in range(8)]
    r = run_nvt(student, mols, steps=300, temperature=300.0, timestep_fs=0.5, seed=0)
    assert 150.0 < float(np.mean(r["temperature_K"])) < 500.0
    for start, end in zip(mols, r["structures"], strict=True):
        before, after = start.get_all_distances(), end.get_all_distances()
        bonded = (before > 0) & (before < 1.6)
        assert np.abs(after[bonded] - before[bonded]).max() < 0.4


def test_batched_nvt_of_crystals_takes_the_fast_path(monkeypatch):
    """NVT needs no stress, so periodic systems run on the kept Verlet lists: the eager
    stress path (graphs built anew each call) is never taken."""
    from ase.build import bulk

    from mlff_distiller.md.torchsim import StudentModel, run_nvt

    def no_graphs(*args, **kwargs):
        raise AssertionError("run_nvt built graphs for the eager stress path")

    monkeypatch.setattr(StudentModel, "_graph", no_graphs)
    student = perturbed_student("ultra-tiny", elements=(6, 14))
    crystals = [bulk("Si", "diamond", a=5.43), bulk("C", "diamond", a=3.57) * 2]
    r = run_nvt(student, crystals, steps=5, temperature=300.0)
    assert all(np.isfinite(r["temperature_K"])) and all(np.isfinite(r["energy_eV"]))


def test_torchsim_fast_chunked_path_equals_eager_on_crystals():
    """Periodic systems: the chunked fast path (no stress) equals the eager wrapper's energies
    and forces (the stress path), several calls of whole systems per batch."""
    import torch_sim as ts
    from ase.build import bulk

    from mlff_distiller.md.torchsim import StudentModel

    student = perturbed_student("ultra-tiny", elements=(1, 6, 8, 14))
    crystals = [bulk("Si", "diamond", a=5.43) * (1, 1, 2), bulk("C", "diamond", a=3.57),
                bulk("Si", "diamond", a=5.5)]
    for k, atoms in enumerate(crystals):
        atoms.rattle(0.05, seed=k)
    state = ts.io.atoms_to_state(crystals, torch.device("cpu"), torch.float64)
    fast = StudentModel(student, compute_stress=False, max_pairs=50)
    calls = []
    fn = fast.energy_and_forces.fn
    fast.energy_and_forces.fn = lambda *a: calls.append(a[5]) or fn(*a)
    out = fast(state)
    eager = StudentModel(student, compute_stress=True)(state)
    assert len(calls) > 1 and sum(calls) == len(crystals)
    torch.testing.assert_close(out["energy"], eager["energy"], rtol=0, atol=1e-10)
    torch.testing.assert_close(out["forces"], eager["forces"], rtol=0, atol=1e-10)


@pytest.mark.slow
def test_torchsim_compiled_equals_eager():
    """``compile=True``: molecules of different sizes and a lone atom (no pairs: the eager
    fallback), each system through the compiled program in a call of its own, give the
    eager path's energies and forces (float64); batched NVT then follows the same
    trajectory."""
    import torch_sim as ts
    from ase import Atoms

    from mlff_distiller.md.torchsim import StudentModel, run_nvt

    student = perturbed_student("tiny")
    mols = [molecule("CH3CH2OH"), molecule("H2O"), Atoms("H", positions=[[0.0, 0.0, 0.0]]),
            molecule("C6H6")]
    for seed, atoms in enumerate(mols):
        atoms.rattle(0.05, seed=seed)
    state = ts.io.atoms_to_state(mols, torch.device("cpu"), torch.float64)
    compiled = StudentModel(student, compile=True, compute_stress=False)
    out = compiled(state)
    eager_model = StudentModel(student, compute_stress=False)
    eager = eager_model(state)
    assert compiled.compile_s > 0 and eager_model.compile_s == 0.0
    torch.testing.assert_close(out["energy"], eager["energy"], rtol=0, atol=1e-9)
    torch.testing.assert_close(out["forces"], eager["forces"], rtol=0, atol=1e-9)
    calls = []
    program = compiled.energy_and_forces.fn._programs[False]
    compiled.energy_and_forces.fn._programs[False] = (
        lambda inputs: calls.append(inputs[0].shape[0]) or program(inputs))
    compiled(state)
    assert calls == [9, 3, 12]
    runs = [run_nvt(student, mols[:2], steps=10, temperature=300.0, compile=c)
            for c in (False, True)]
    for fixed, fast in zip(runs[0]["structures"], runs[1]["structures"], strict=True):
        np.testing.assert_allclose(fast.positions, fixed.positions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(runs[1]["energy_eV"], runs[0]["energy_eV"], rtol=0, atol=1e-9)


def _state(structures):
    import torch_sim as ts

    return ts.io.atoms_to_state(structures, torch.device("cpu"), torch.float64)


def test_torchsim_verlet_lists_follow_moving_crystals():
    """Periodic systems moved step by step, some atoms beyond half the skin: forces from the
    kept Verlet lists equal those on neighbour lists built anew each call (the stress
    path), and the lists are rebuilt only when needed."""
    from ase.build import bulk

    from mlff_distiller.md.fast import DEFAULT_SKIN
    from mlff_distiller.md.torchsim import StudentModel

    student = perturbed_student("ultra-tiny", elements=(6, 14))
    crystals = [bulk("Si", "diamond", a=5.43) * (2, 1, 1), bulk("C", "diamond", a=3.57) * 2]
    rng = np.random.default_rng(0)
    fast = StudentModel(student, compute_stress=False)
    fresh = StudentModel(student, compute_stress=True)
    for _ in range(12):
        for atoms in crystals:  # 0.04 Å steps: about half the skin after 6-7 of them
            atoms.positions += rng.normal(scale=0.04 / np.sqrt(3), size=atoms.positions.shape)
        state = _state(crystals)
        out, reference = fast(state), fresh(state)
        torch.testing.assert_close(out["energy"], reference["energy"], rtol=0, atol=1e-10)
        torch.testing.assert_close(out["forces"], reference["forces"], rtol=0, atol=1e-10)
    assert DEFAULT_SKIN == 0.5
    assert len(crystals) < fast.neighbor_list_builds < 12 * len(crystals)


def test_torchsim_verlet_lists_follow_changing_batches():
    """Systems swapped in and out between calls (as torch-sim's autobatcher does), a system
    replaced by another of the same atom count, and molecules that never need a rebuild:
    every call equals the calculator on each system."""
    from ase import Atoms

    from mlff_distiller.md.calculator import StudentCalculator
    from mlff_distiller.md.torchsim import StudentModel

    student = perturbed_student("ultra-tiny", elements=(1, 6, 7, 8))
    ethanol, water, ammonia, methane = (molecule(n) for n in ("CH3CH2OH", "H2O", "NH3", "CH4"))
    hcn_like = Atoms("CON", positions=water.positions * 1.3)  # water's shape, other elements
    model = StudentModel(student, compute_stress=False)
    batches = [[ethanol, water], [ethanol, water], [ethanol], [water],
               [methane, ethanol, water], [methane, ethanol, hcn_like], [ammonia]]
    for batch in batches:
        out = model(_state(batch))
        start = 0
        for k, atoms in enumerate(batch):
            atoms = atoms.copy()
            atoms.calc = StudentCalculator(student)
            assert float(out["energy"][k]) == pytest.approx(atoms.get_potential_energy(),
                                                           abs=1e-9)
            np.testing.assert_allclose(out["forces"][start:start + len(atoms)].numpy(),
                                       atoms.get_forces(), rtol=0, atol=1e-9)
            start += len(atoms)
    assert model.neighbor_list_builds == 1  # ammonia's; molecules list all pairs once


def test_torchsim_rejects_non_finite_positions_by_system():
    from mlff_distiller.errors import InputError
    from mlff_distiller.md.torchsim import StudentModel

    model = StudentModel(perturbed_student("ultra-tiny", elements=(1, 6, 8)),
                         compute_stress=False)
    water, methane = molecule("H2O"), molecule("CH4")
    model(_state([water, methane]))
    methane.positions[2, 1] = np.nan
    with pytest.raises(InputError, match=r"torch-sim system 1: positions contain NaN.*\[2\]"):
        model(_state([water, methane]))
