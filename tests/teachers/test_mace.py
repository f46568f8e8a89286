"""MACE adapter wiring on a small MACE built locally with random weights (no download)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from mlff_distiller.errors import InputError
from mlff_distiller.teachers import load_teacher

from .helpers import assert_forces_are_gradient, assert_rotation_equivariant, labels_of

pytest.importorskip("mace", reason="MACE teacher needs the [mace] extra + mace-torch --no-deps")

FLAG = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
E0 = {1: -13.6, 6: -1030.0, 7: -1485.0, 8: -2040.0}  # eV, isolated-atom energies


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from e3nn import o3

    flag = os.environ.get(FLAG)
    from mace import modules  # importing mace sets FLAG process-wide: undo it below

    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=4.0, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=len(E0),
        hidden_irreps=o3.Irreps("8x0e+8x1o"), MLP_irreps=o3.Irreps("8x0e"),
        gate=torch.nn.functional.silu, atomic_energies=np.array(list(E0.values())),
        avg_num_neighbors=6.0, atomic_numbers=list(E0), correlation=2, radial_type="bessel",
        atomic_inter_scale=1.0, atomic_inter_shift=0.0)
    path = tmp_path_factory.mktemp("mace") / "random.model"
    torch.save(model, path)
    if flag is None:
        os.environ.pop(FLAG, None)
    return path


@pytest.fixture(scope="module")
def teacher(model_file):
    flag = os.environ.get(FLAG)
    dtype = torch.get_default_dtype()
    teacher = load_teacher(f"mace:{model_file}")
    assert os.environ.get(FLAG) == flag, "the MACE teacher leaked mace's env flag"
    assert torch.get_default_dtype() == dtype, "loading MACE changed torch's default dtype"
    return teacher


def test_elements_units_and_shapes(teacher):
    assert teacher.supported_elements == frozenset(E0)
    labels = labels_of(teacher, molecule("CH3CH2OH"))
    assert labels.forces.shape == (9, 3)
    # eV scale of the E0 table: ethanol's energy is near the sum of its atoms' E0
    assert abs(labels.energy - (2 * E0[6] + 6 * E0[1] + E0[8])) < 50.0
    # far beyond r_max the interaction vanishes: the energy is the sum of the lone atoms'
    lone = [labels_of(teacher, Atoms(s, positions=[[0, 0, 0]])).energy for s in "CO"]
    apart = Atoms("CO", positions=[[0, 0, 0], [0, 0, 10.0]])
    assert labels_of(teacher, apart).energy == pytest.approx(sum(lone), abs=1e-8)


def test_forces_are_gradient_and_equivariant(teacher):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=3)
    assert_forces_are_gradient(teacher, atoms, [(0, 0), (4, 1), (8, 2)], delta=1e-4, atol=1e-6)
    assert_rotation_equivariant(teacher, atoms, e_atol=1e-8, f_atol=1e-8)


def test_unsupported_element_refused(teacher):
    with pytest.raises(InputError, match="S"):
        teacher.check_elements([molecule("SH2")])
