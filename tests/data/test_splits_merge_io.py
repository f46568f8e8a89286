"""Splits by molecule, shard + merge = serial, extxyz round trip, dataset info."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlff_distiller import keys
from mlff_distiller.data.dataset import LabeledDataset, write_dataset
from mlff_distiller.data.extxyz import export_extxyz, import_extxyz
from mlff_distiller.data.inspect import dataset_info
from mlff_distiller.data.labeling import label_structures
from mlff_distiller.data.merge import merge_datasets
from mlff_distiller.data.schema import open_dataset, read_block
from mlff_distiller.data.splits import assign_by_ratio, split_dataset
from mlff_distiller.errors import InputError
from tests.data.helpers import EMTTeacher, small_pool, write_pool


@pytest.fixture()
def many_molecules(tmp_path):
    """20 'molecules' (ids 0..19) with 3 frames each."""
    pool = small_pool(60)
    for k, atoms in enumerate(pool):
        atoms.info["molecule_id"] = k // 3
    labels = EMTTeacher().label(pool)
    path = tmp_path / "d.h5"
    write_dataset(path, pool, labels, molecule_ids=[a.info["molecule_id"] for a in pool])
    return path


def test_ratio_split_is_by_molecule_seeded_and_complete(many_molecules):
    before = LabeledDataset(many_molecules).content_hash
    summary = split_dataset(many_molecules, ratios=(0.8, 0.1, 0.1), seed=0)
    assert [summary[s]["molecules"] for s in ("train", "val", "test")] == [16, 2, 2]
    parts = {s: LabeledDataset(many_molecules, split=s) for s in ("train", "val", "test")}
    ids = {s: set(ds.molecule_ids.tolist()) for s, ds in parts.items()}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or
                ids["val"] & ids["test"])
    assert sum(len(ds) for ds in parts.values()) == 60  # every frame in exactly one split
    assert len(parts["val"]) == 6  # all 3 frames of each of its 2 molecules
    for ds in parts.values():
        seen = torch.cat([ds[i][keys.ATOMIC_NUMBERS] for i in range(len(ds))]).unique()
        assert ds.elements == tuple(seen.tolist())
    assert parts["val"][0][keys.STRUCTURE_INDEX].item() in range(60)
    assert parts["train"].content_hash == before  # splits do not change the labels
    again = assign_by_ratio(np.arange(20), (0.8, 0.1, 0.1), seed=0)
    assert set(again["val"].tolist()) == ids["val"]
    other = assign_by_ratio(np.arange(20), (0.8, 0.1, 0.1), seed=1)
    assert set(other["val"].tolist()) != ids["val"] or set(other["test"]) != ids["test"]
    with pytest.raises(InputError, match="already has splits"):
        split_dataset(many_molecules)


def test_explicit_split_lists_and_bad_requests(many_molecules):
    split_dataset(many_molecules, train_ids=[0, 1, 2], val_ids=[3], test_ids=[4, 5])
    assert sorted(set(LabeledDataset(many_molecules, split="test").molecule_ids)) == [4, 5]
    with pytest.raises(InputError, match="not in"):
        split_dataset(many_molecules, train_ids=[99], overwrite=True)
    with pytest.raises(InputError, match="both train and val"):
        split_dataset(many_molecules, train_ids=[1], val_ids=[1], overwrite=True)
    with pytest.raises(InputError, match="summing to 1"):
        split_dataset(many_molecules, ratios=(0.5, 0.1, 0.1), overwrite=True)
    with pytest.raises(InputError, match="molecule"):
        assign_by_ratio(np.zeros(5, np.int64), (0.8, 0.1, 0.1), seed=0)


def test_shards_merged_equal_the_serial_run(tmp_path):
    pool = write_pool(tmp_path / "pool.extxyz", small_pool(11, periodic=1))
    serial = label_structures(pool, EMTTeacher(), tmp_path / "all.h5", chunk_size=4,
                              progress=False)
    shards = []
    for i in (2, 0, 1):  # any order
        out = tmp_path / f"s{i}.h5"
        label_structures(pool, EMTTeacher(), out, chunk_size=4, shard=f"{i}/3", progress=False)
        shards.append(out)
    with open_dataset(shards[1]) as f:
        assert f["structures"]["source_index"][:].tolist() == [0, 1, 2, 3]
    merged = merge_datasets(shards, tmp_path / "merged.h5")
    assert merged["content_hash"] == serial["content_hash"]
    assert merged["missing_shards"] == {}
    partial = merge_datasets(shards[:2], tmp_path / "partial.h5")
    assert list(partial["missing_shards"].values()) == [["1/3"]]
    with pytest.raises(InputError, match="overlapping"):
        merge_datasets([tmp_path / "all.h5", shards[0]], tmp_path / "bad.h5")


def test_merge_refuses_mismatched_teachers(tmp_path):
    pool = small_pool(2)
    labels = EMTTeacher().label(pool)
    write_dataset(tmp_path / "a.h5", pool, labels, metadata={"teacher": "sevennet:7net-0"})
    write_dataset(tmp_path / "b.h5", pool, labels, metadata={"teacher": "xtb:GFN2-xTB"})
    with pytest.raises(InputError, match="different teachers"):
        merge_datasets([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_extxyz_round_trip_keeps_labels(tmp_path):
    pool = small_pool(4, periodic=2)
    labels = EMTTeacher().label(pool)
    write_dataset(tmp_path / "d.h5", pool, labels, molecule_ids=[7, 7, 8, 8, 9, 9])
    export = export_extxyz(tmp_path / "d.h5", tmp_path / "d.extxyz")
    assert export["n_structures"] == 6
    text = (tmp_path / "d.extxyz").read_text()
    assert "REF_energy=" in text and "REF_forces:R:3" in text and "REF_stress=" in text
    summary = import_extxyz(tmp_path / "d.extxyz", tmp_path / "back.h5")
    assert summary["with_stress"] == 2
    a = LabeledDataset(tmp_path / "d.h5", dtype=torch.float64, cutoff=4.0)
    b = LabeledDataset(tmp_path / "back.h5", dtype=torch.float64, cutoff=4.0)
    assert b.molecule_ids.tolist() == [7, 7, 8, 8, 9, 9]
    for i in range(6):
        for key in (keys.ENERGY, keys.FORCES, keys.POSITIONS):
            torch.testing.assert_close(a[i][key], b[i][key], rtol=0, atol=1e-8)
    with open_dataset(tmp_path / "back.h5") as f:
        stress = read_block(f, 4, 5).stress[0]
    np.testing.assert_allclose(stress, labels[4].stress, atol=1e-12)
    (tmp_path / "nolabels.extxyz").write_text("1\nProperties=species:S:1:pos:R:3\nH 0 0 0\n")
    with pytest.raises(InputError, match="REF_energy"):
        import_extxyz(tmp_path / "nolabels.extxyz", tmp_path / "x.h5")


def test_info_counts_and_distributions(many_molecules):
    split_dataset(many_molecules, ratios=(0.8, 0.1, 0.1), seed=0)
    info = dataset_info(many_molecules)
    ds = LabeledDataset(many_molecules, dtype=torch.float64)
    forces = torch.cat([ds[i][keys.FORCES] for i in range(len(ds))])
    numbers = torch.cat([ds[i][keys.ATOMIC_NUMBERS] for i in range(len(ds))])
    assert info["counts"]["structures"] == 60 and info["counts"]["molecules"] == 20
    assert info["elements"]["H"]["atoms"] == int((numbers == 1).sum())
    assert info["elements"]["O"]["structures"] == 30  # H2O and CO2 frames
    assert info["splits"]["train"]["structures"] == 48
    assert info["molecules"]["frames_per_molecule"]["max"] == 3
    np.testing.assert_allclose(info["forces"]["component_std"], forces.std(0, unbiased=False),
                               rtol=1e-9)
    norms = forces.norm(dim=1)
    assert info["forces"]["norm_max"] == pytest.approx(norms.max().item())
    q = np.percentile(norms.numpy(), 90, method="inverted_cdf")
    width = norms.max().item() / 20000
    assert 0 <= info["forces"]["norm_percentiles"]["90"] - q <= width * 1.001
