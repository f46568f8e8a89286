"""write_dataset -> LabeledDataset round trip, loader batches, Hessian collation, bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mlff_distiller import keys
from mlff_distiller.data.dataset import LabeledDataset, make_loader, write_dataset
from mlff_distiller.data.graph import atoms_to_graph, collate
from mlff_distiller.errors import InputError
from tests.data.helpers import EMTTeacher, small_pool


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    pool = small_pool(8, periodic=2)
    labels = EMTTeacher().label(pool, hessian_rows=2)
    path = tmp_path_factory.mktemp("ds") / "data.h5"
    ids = [a.info["molecule_id"] for a in pool]
    write_dataset(path, pool, labels, molecule_ids=ids, metadata={"teacher": "test:emt"})
    return path, pool, labels


def test_round_trip_matches_structures_and_labels(labeled):
    path, pool, labels = labeled
    ds = LabeledDataset(path, cutoff=4.0, dtype=torch.float64)
    assert len(ds) == len(pool)
    assert ds.elements == (1, 6, 7, 8, 29)
    assert ds.metadata["teacher"] == "test:emt" and ds.metadata["schema_version"] == 1
    assert list(ds.molecule_ids) == [a.info["molecule_id"] for a in pool]
    for i in (0, 5, 9):
        item = ds[i]
        ref = atoms_to_graph(pool[i], cutoff=4.0, dtype=torch.float64)
        for k in keys.GRAPH_KEYS:
            assert torch.equal(item[k], ref[k]), k
        assert item[keys.ENERGY].item() == labels[i].energy
        assert torch.equal(item[keys.FORCES], torch.as_tensor(labels[i].forces))
        assert torch.equal(item[keys.HESSIAN_ROWS], torch.as_tensor(labels[i].hessian_rows))
        assert item[keys.STRUCTURE_INDEX].item() == i
    # mixed molecules + crystals: stress is not yielded for a file where some lack it
    assert keys.STRESS not in ds[9]


def test_hessian_rows_collate_into_batch_coordinates(labeled):
    path, pool, _ = labeled
    ds = LabeledDataset(path, cutoff=4.0, dtype=torch.float64)
    batch = collate([ds[1], ds[2]])
    n1 = len(pool[1])
    n = n1 + len(pool[2])
    assert batch[keys.HESSIAN_ROWS].shape == (4, 3 * n)
    idx = batch[keys.HESSIAN_ROW_INDEX]
    assert torch.equal(idx[2:], ds[2][keys.HESSIAN_ROW_INDEX] + 3 * n1)
    # rows of the second structure are zero over the first one's coordinates and equal its own
    assert torch.all(batch[keys.HESSIAN_ROWS][2:, :3 * n1] == 0)
    assert torch.equal(batch[keys.HESSIAN_ROWS][2:, 3 * n1:], ds[2][keys.HESSIAN_ROWS])
    assert torch.equal(batch[keys.HESSIAN_ROWS][:2, :3 * n1], ds[1][keys.HESSIAN_ROWS])


def test_loader_is_seeded_and_covers_every_structure(labeled):
    path, pool, _ = labeled
    ds = LabeledDataset(path, cutoff=4.0)
    first = [b[keys.STRUCTURE_INDEX].tolist() for b in make_loader(ds, batch_size=3, seed=1)]
    again = [b[keys.STRUCTURE_INDEX].tolist() for b in make_loader(ds, batch_size=3, seed=1)]
    assert first == again
    assert sorted(sum(first, [])) == list(range(len(pool)))
    batch = next(iter(make_loader(ds, batch_size=4, shuffle=False)))
    assert batch[keys.ENERGY].shape == (4,) and batch[keys.CELL].shape == (4, 3, 3)
    assert batch[keys.FORCES].shape == (int(batch[keys.NUM_ATOMS].sum()), 3)


def test_periodic_only_file_yields_stress(tmp_path):
    pool = small_pool(0, periodic=3)
    labels = EMTTeacher().label(pool)
    write_dataset(tmp_path / "cu.h5", pool, labels)
    ds = LabeledDataset(tmp_path / "cu.h5", cutoff=4.0, dtype=torch.float64)
    assert torch.allclose(ds[1][keys.STRESS][0], torch.as_tensor(labels[1].stress))
    assert ds[1][keys.STRESS].shape == (1, 3, 3)


def test_corrupt_file_is_a_clear_error_and_left_untouched(labeled, tmp_path):
    path = tmp_path / "broken.h5"
    data = labeled[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = path.read_bytes()
    with pytest.raises(InputError, match="corrupt or truncated|damaged"):
        LabeledDataset(path)
    assert path.read_bytes() == before
    with pytest.raises(InputError, match="no such file"):
        LabeledDataset(tmp_path / "missing.h5")


def test_other_schema_version_and_missing_split_are_refused(labeled, tmp_path):
    path = tmp_path / "v99.h5"
    path.write_bytes(labeled[0].read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(InputError, match="schema version 99"):
        LabeledDataset(path)
    with pytest.raises(InputError, match="mlffd data split"):
        LabeledDataset(labeled[0], split="train")
    np.testing.assert_equal(LabeledDataset(labeled[0]).molecule_ids.dtype, np.int64)


def test_loader_worker_processes_read_the_same_batches(labeled):
    ds = LabeledDataset(labeled[0], cutoff=4.0)
    single = [b[keys.FORCES] for b in make_loader(ds, batch_size=4, shuffle=False)]
    workers = [b[keys.FORCES] for b in make_loader(ds, batch_size=4, shuffle=False,
                                                   num_workers=1)]
    assert all(torch.equal(a, b) for a, b in zip(single, workers, strict=True))
