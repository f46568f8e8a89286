"""Orb adapter wiring on a locally built orb-v3 architecture with random weights (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from mlff_distiller.errors import InputError
from mlff_distiller.teachers import load_teacher

from .helpers import assert_forces_are_gradient, labels_of

pytest.importorskip("orb_models", reason="Orb teacher needs the [orb] extra")

MODEL = "orb-v3-conservative-inf-omat"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.pretrained import SystemConfig

    torch.manual_seed(0)
    model = pretrained.orb_v3_conservative_architecture(
        device="cpu", system_config=SystemConfig(radius=6.0, max_num_neighbors=120))
    path = tmp_path_factory.mktemp("orb") / "random-orb-v3.ckpt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def teacher(weights):
    dtype = torch.get_default_dtype()
    teacher = load_teacher(f"orb:{MODEL}", weights=str(weights))
    assert torch.get_default_dtype() == dtype, "loading orb changed torch's default dtype"
    return teacher


def test_labels_match_the_package_calculator(teacher, weights):
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.calculator import ORBCalculator

    atoms = molecule("CH3CH2OH")
    labels = labels_of(teacher, atoms)
    assert teacher.name == f"orb:{MODEL}"
    assert labels.forces.shape == (9, 3) and np.isfinite(labels.energy)
    default = torch.get_default_dtype()
    model = pretrained.ORB_PRETRAINED_MODELS[MODEL](weights_path=str(weights), device="cpu",
                                                     precision="float32-highest", compile=False)
    torch.set_default_dtype(default)
    direct = atoms.copy()
    direct.calc = ORBCalculator(model, device="cpu")
    assert labels.energy == pytest.approx(direct.get_potential_energy(), abs=1e-5)
    assert np.allclose(labels.forces, direct.get_forces(), atol=1e-5)


def test_forces_are_gradient(teacher):
    # (no rotation check: Orb is not rotation-equivariant by construction, only by training)
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=2)
    forces = labels_of(teacher, atoms).forces
    scale = max(np.abs(forces).max(), 1e-2)
    assert_forces_are_gradient(teacher, atoms, [(0, 0), (5, 2)], delta=1e-2, atol=0.02 * scale)


def test_bad_name_and_missing_weights_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="orb-v3"):
        load_teacher("orb:orb-v9")
    with pytest.raises(InputError, match="does not exist"):
        load_teacher(f"orb:{MODEL}", weights=str(tmp_path / "missing.ckpt"))
