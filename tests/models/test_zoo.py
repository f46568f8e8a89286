"""Zoo names resolve to shipped students, or fail clearly when not shipped."""

from __future__ import annotations

import pytest
from ase.build import molecule

from mlff_distiller import InputError, StudentCalculator, load_student
from mlff_distiller.models.zoo import ZOO, zoo_path


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_student_loads_offline_or_fails_clearly(name):
    if zoo_path(name) is None:
        with pytest.raises(InputError, match="zoo"):
            load_student(name)
        return
    model = load_student(name)
    assert model.checkpoint_metadata["preset"] in name
    assert "configs/organic.yaml" in model.checkpoint_metadata["command"]
    atoms = molecule("CH3CH2OH")
    atoms.calc = StudentCalculator(name)
    assert atoms.get_forces().shape == (9, 3)


def test_zoo_list_cli_reports_every_name():
    import json

    from typer.testing import CliRunner

    from mlff_distiller.cli import app

    result = CliRunner().invoke(app, ["zoo", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == set(ZOO)
    for name, row in rows.items():
        assert row["shipped"] == (zoo_path(name) is not None)
        if row["shipped"]:
            assert row["preset"] in name and 0 < row["force_r2"] <= 1
