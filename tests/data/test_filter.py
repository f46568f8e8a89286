"""`mlffd data filter`: drops crushed geometries and label outliers, keeps everything else."""

from __future__ import annotations

import numpy as np
import pytest

from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.data.filter import filter_dataset
from mlff_distiller.data.schema import open_dataset, read_block, read_metadata
from mlff_distiller.data.splits import split_dataset
from mlff_distiller.errors import InputError
from tests.data.helpers import EMTTeacher, small_pool


@pytest.fixture()
def flawed(tmp_path):
    """12 structures of 4 molecules with Hessian rows; structure 5 has a crushed bond
    (H 0.3 Å from its O), structure 8 a force outlier (1e4 eV/Å), split by molecule."""
    pool = small_pool(12)
    pool[5].positions[1] = pool[5].positions[0] + [0.3, 0.0, 0.0]
    labels = EMTTeacher().label(pool, hessian_rows=2)
    labels[8].forces[0, 2] = 1e4
    path = tmp_path / "d.h5"
    write_dataset(path, pool, labels, molecule_ids=[a.info["molecule_id"] for a in pool],
                  metadata={"teacher": "test:emt", "teacher_version": "1"})
    split_dataset(path, train_ids=[0, 1], val_ids=[2], test_ids=[3])
    return path, pool, labels


def test_filter_drops_exactly_the_flawed_structures_and_keeps_the_rest(flawed, tmp_path):
    path, pool, labels = flawed
    summary = filter_dataset(path, tmp_path / "f.h5", min_bond_fraction=0.6, max_force=100.0)
    assert [d["source_index"] for d in summary["dropped_structures"]] == [5, 8]
    assert summary["dropped_by_reason"] == {"min_bond_fraction": 1, "max_force": 1}
    assert summary["n_structures"] == 10
    kept = [k for k in range(12) if k not in (5, 8)]
    with open_dataset(path) as f_in, open_dataset(tmp_path / "f.h5") as f_out:
        out = read_block(f_out, 0, 10)
        for j, k in enumerate(kept):  # structure by structure, atoms and Hessian rows
            ref = read_block(f_in, k, k + 1)
            one = read_block(f_out, j, j + 1)
            for name in ("numbers", "positions", "forces", "energy", "molecule_id",
                         "source_index", "hessian_index", "hessian_values"):
                np.testing.assert_array_equal(getattr(one, name), getattr(ref, name), name)
        assert out.source_index.tolist() == kept
        meta = read_metadata(f_out)
        assert (meta["teacher"], meta["teacher_version"]) == ("test:emt", "1")
        assert meta["recipe"]["criteria"] == {"min_bond_fraction": 0.6, "max_force": 100.0}
        assert meta["recipe"]["filtered_from"]["content_hash"] == read_metadata(f_in)[
            "content_hash"]
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(f_out["splits"][name][:], f_in["splits"][name][:])


def test_each_criterion_alone_and_the_input_is_untouched(flawed, tmp_path):
    path, _, _ = flawed
    before = path.read_bytes()
    bonds = filter_dataset(path, tmp_path / "a.h5", min_bond_fraction=0.6)
    forces = filter_dataset(path, tmp_path / "b.h5", max_force=100.0)
    assert [d["source_index"] for d in bonds["dropped_structures"]] == [5]
    # EMT's forces on the crushed structure are above the limit too
    assert [d["source_index"] for d in forces["dropped_structures"]] == [5, 8]
    assert all(d["reason"].startswith("max_force") for d in forces["dropped_structures"])
    lenient = filter_dataset(path, tmp_path / "c.h5", max_force=2e4)
    assert lenient["dropped"] == 0
    assert path.read_bytes() == before


def test_split_ids_of_molecules_left_without_structures_are_dropped(tmp_path):
    pool = small_pool(4)  # one structure per molecule: H2O, CH4, NH3, CO2
    pool[3].positions[1] = pool[3].positions[0] + [0.3, 0.0, 0.0]
    path = tmp_path / "d.h5"
    write_dataset(path, pool, EMTTeacher().label(pool), molecule_ids=[0, 1, 2, 3])
    split_dataset(path, train_ids=[0, 1], val_ids=[2], test_ids=[3])
    summary = filter_dataset(path, tmp_path / "f.h5", min_bond_fraction=0.6)
    assert summary["dropped"] == 1
    with open_dataset(tmp_path / "f.h5") as f:
        assert f["splits"]["train"][:].tolist() == [0, 1]
        assert f["splits"]["val"][:].tolist() == [2]
        assert f["splits"]["test"][:].tolist() == []


def test_filter_bad_input(flawed, tmp_path):
    path, _, _ = flawed
    with pytest.raises(InputError, match="at least one criterion"):
        filter_dataset(path, tmp_path / "f.h5")
    with pytest.raises(InputError, match="min-bond-fraction must be in"):
        filter_dataset(path, tmp_path / "f.h5", min_bond_fraction=1.5)
    with pytest.raises(InputError, match="max-force must be > 0"):
        filter_dataset(path, tmp_path / "f.h5", max_force=-1)
    with pytest.raises(InputError, match="must differ"):
        filter_dataset(path, path, max_force=10.0)
    (tmp_path / "exists.h5").write_text("keep me")
    with pytest.raises(InputError, match="exists"):
        filter_dataset(path, tmp_path / "exists.h5", max_force=10.0)
    assert (tmp_path / "exists.h5").read_text() == "keep me"
    with pytest.raises(InputError, match="every one of the 12 structures"):
        filter_dataset(path, tmp_path / "none.h5", max_force=1e-9)
    assert not (tmp_path / "none.h5").exists()
    assert not list(tmp_path.glob(".none.h5.*"))  # no temporary file left behind
