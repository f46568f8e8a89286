"""load_teacher specs, the ASE factory adapter and the listing."""

from __future__ import annotations

import pytest
from ase.build import molecule

from mlff_distiller.errors import InputError
from mlff_distiller.teachers import TEACHERS, available_teachers, load_teacher
from mlff_distiller.teachers.base import require

from .helpers import assert_forces_are_gradient, labels_of


def test_ase_factory_teacher_labels():
    teacher = load_teacher("ase:ase.calculators.emt:EMT")
    assert teacher.name == "ase:ase.calculators.emt:EMT" and teacher.supported_elements is None
    atoms = molecule("CH4")
    atoms.rattle(0.05, seed=0)
    assert labels_of(teacher, atoms).forces.shape == (5, 3)
    assert_forces_are_gradient(teacher, atoms, [(0, 0), (1, 2)], delta=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown teacher"),
    ("ase", "needs a factory"),
    ("ase:not a spec", "package.module:factory"),
    ("ase:os.path", "package.module:factory"),
    ("ase:no_such_module_xyz:f", "cannot import"),
    ("ase:ase.calculators.emt:NoSuch", "no callable"),
    ("ase:ase.build:bulk", "raised TypeError"),
    ("ase:ase.atoms:Atoms", "not an ASE calculator"),
    ("mace", "needs a model file"),
    ("xtb:GFN9", "GFN2-xTB"),
])
def test_bad_specs_are_input_errors(spec, message):
    with pytest.raises(InputError, match=message):
        load_teacher(spec)


def test_weights_refused_where_meaningless():
    with pytest.raises(InputError, match="takes no weights"):
        load_teacher("xtb", weights="x.pt")


def test_listing_and_missing_extra_message():
    rows = {row["name"]: row for row in available_teachers()}
    assert set(rows) == set(TEACHERS) and rows["ase"]["installed"]
    with pytest.raises(InputError, match=r"mlff-distiller\[orb\]"):
        require("no_such_package_abc", "orb", "the Orb teacher")
