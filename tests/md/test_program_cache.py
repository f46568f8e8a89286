"""compile=True keeps built programs on disk: found again only for the same student and
settings, loaded instead of rebuilt, and a damaged file is rebuilt, never trusted."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase.build import molecule

from mlff_distiller import StudentCalculator
from mlff_distiller.md import program_cache
from mlff_distiller.md.fast import CompiledEnergyAndForces, FastForceField
from tests.conftest import perturbed_student


def _key(fast, periodic=False, like=None):
    like = torch.zeros(1) if like is None else like
    return program_cache.program_key(fast, periodic, like, {"cpp.threads": 1})


def test_key_follows_every_weight_and_setting():
    model = perturbed_student("ultra-tiny").float()
    fast = FastForceField(model)
    assert _key(fast) == _key(FastForceField(copy.deepcopy(model)))  # same weights, same key
    keys = {_key(fast), _key(fast, periodic=True), _key(fast, like=torch.zeros(1).double())}
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        nudged.energy_model.readout.mlp[2].bias.add_(1e-6)
    keys.add(_key(FastForceField(nudged)))
    rescaled = copy.deepcopy(model)
    with torch.no_grad():  # a buffer, not a parameter
        rescaled.energy_model.energy_scale.mul_(1.0 + 1e-6)
    keys.add(_key(FastForceField(rescaled)))
    assert len(keys) == 5


def test_cache_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(program_cache.CACHE_ENV, str(tmp_path / "here"))
    assert program_cache.cache_dir() == tmp_path / "here"
    monkeypatch.setenv(program_cache.CACHE_ENV, "off")
    assert program_cache.cache_dir() is None
    assert program_cache.cached_program("0" * 64) is None
    monkeypatch.delenv(program_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert program_cache.cache_dir() == tmp_path / "xdg" / "mlff-distiller" / "programs"


def test_unwritable_cache_warns_and_goes_on(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(program_cache.CACHE_ENV, str(blocker / "cache"))
    package = tmp_path / "p.pt2"
    package.write_bytes(b"x")
    assert program_cache.store_program("a" * 64, package) is None
    assert "could not cache" in capsys.readouterr().err


@pytest.mark.slow
def test_second_compile_loads_the_cached_program(monkeypatch, tmp_path):
    monkeypatch.setenv(program_cache.CACHE_ENV, str(tmp_path))
    model = perturbed_student("ultra-tiny").float().eval()
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=0)

    def forces_and_compiler():
        calc = StudentCalculator(copy.deepcopy(model), compile=True)
        atoms.calc = calc
        forces = atoms.get_forces()
        atoms.calc = None
        return forces, calc._fast_fn

    built_forces, built = forces_and_compiler()
    assert isinstance(built, CompiledEnergyAndForces) and built.cache_hits == 0
    files = list(tmp_path.glob("*.pt2"))
    assert len(files) == 1
    loaded_forces, loaded = forces_and_compiler()
    assert loaded.cache_hits == 1
    assert loaded.compile_s < built.compile_s
    np.testing.assert_array_equal(loaded_forces, built_forces)

    files[0].write_bytes(b"truncated")  # damaged: rebuilt and replaced, not loaded
    rebuilt_forces, rebuilt = forces_and_compiler()
    assert rebuilt.cache_hits == 0
    np.testing.assert_array_equal(rebuilt_forces, built_forces)
    assert files[0].stat().st_size > 1000
    assert forces_and_compiler()[1].cache_hits == 1
