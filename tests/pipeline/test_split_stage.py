"""The distill split stage: optional filtering of the labels, then the split by molecule."""

from __future__ import annotations

import numpy as np

from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.data.schema import open_dataset
from mlff_distiller.pipeline import _split
from mlff_distiller.pipeline_config import DistillConfig
from tests.data.helpers import EMTTeacher, small_pool


def _labeled(tmp_path):
    """8 structures of 4 molecules; structure 6 has a crushed bond."""
    pool = small_pool(8)
    pool[6].positions[1] = pool[6].positions[0] + [0.3, 0.0, 0.0]
    path = tmp_path / "labels.h5"
    write_dataset(path, pool, EMTTeacher().label(pool),
                  molecule_ids=[a.info["molecule_id"] for a in pool])
    return path


def test_split_stage_filters_when_asked_and_copies_otherwise(tmp_path):
    labeled = _labeled(tmp_path)
    before = labeled.read_bytes()
    plain = DistillConfig.from_dict({"split": {"ratios": [0.5, 0.25, 0.25], "seed": 0}})
    out = _split(plain, labeled, tmp_path)
    assert "filtered" not in out
    with open_dataset(out["dataset"]) as f:
        assert f["structures"]["energy"].shape[0] == 8
    filtered = DistillConfig.from_dict({"split": {"ratios": [0.5, 0.25, 0.25], "seed": 0,
                                                  "min_bond_fraction": 0.6}})
    out = _split(filtered, labeled, tmp_path)  # the stage re-made in the same folder
    assert out["filtered"]["dropped"] == 1
    assert [d["source_index"] for d in out["filtered"]["dropped_structures"]] == [6]
    with open_dataset(out["dataset"]) as f:
        assert 6 not in f["structures"]["source_index"][:].tolist()
        ids = np.concatenate([f["splits"][s][:] for s in ("train", "val", "test")])
    assert sorted(ids.tolist()) == [0, 1, 2, 3]
    assert sum(out["splits"][s]["structures"] for s in ("train", "val", "test")) == 7
    assert labeled.read_bytes() == before
