"""Checkpoints: bit-exact round trip, legacy files, refusal of pickled payloads, bad files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule

from mlff_distiller import InputError, build_student, keys, load_student, save_student, testing
from tests.conftest import perturbed_student


def _same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_round_trip_is_bit_exact(tmp_path):
    model = perturbed_student("tiny").float()
    path = save_student(model, tmp_path / "s.safetensors", metadata={"teacher": "sevennet:7net-0",
                                                                     "dataset_hash": "abc"})
    loaded = load_student(path)
    _same_weights(model, loaded)
    assert loaded.config == model.config
    assert loaded.checkpoint_metadata == {"teacher": "sevennet:7net-0", "dataset_hash": "abc"}
    atoms = molecule("C6H6")
    a, b = testing.predict(model, atoms), testing.predict(loaded, atoms)
    assert np.array_equal(a[keys.ENERGY], b[keys.ENERGY])
    assert np.array_equal(a[keys.FORCES], b[keys.FORCES])


def test_float64_round_trip_keeps_dtype(tmp_path):
    model = perturbed_student("ultra-tiny")
    loaded = load_student(save_student(model, tmp_path / "s.safetensors"))
    assert next(loaded.parameters()).dtype == torch.float64
    _same_weights(model, loaded)


@pytest.mark.parametrize("prefix", ["", "model."])
@pytest.mark.parametrize("wrapped", [True, False])
def test_legacy_checkpoint_loads(tmp_path, prefix, wrapped):
    model = build_student("ultra-tiny", seed=5)
    state = {prefix + k: v for k, v in model.energy_model.state_dict().items()}
    payload = {"model_state_dict": state, "epoch": 7} if wrapped else state
    path = tmp_path / "legacy.pt"
    torch.save(payload, path)
    with pytest.raises(InputError, match="--preset"):
        load_student(path)
    loaded = load_student(path, config="ultra-tiny")
    _same_weights(model, loaded)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {Path(os.environ['EXPLOIT_MARKER'])}",))


def test_pickled_payload_is_refused_without_executing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": {}, "hook": _Exploit()}, path)
    with pytest.raises(InputError, match="refused"):
        load_student(path, config="tiny")
    assert not marker.exists()
    # a raw (non-zip) pickle is refused too
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(InputError):
        load_student(raw, config="tiny")
    assert not marker.exists()


def test_weights_not_matching_config(tmp_path):
    model = build_student("ultra-tiny")
    torch.save({"model_state_dict": model.energy_model.state_dict()}, tmp_path / "x.pt")
    with pytest.raises(InputError, match="do not match"):
        load_student(tmp_path / "x.pt", config="tiny")


def test_truncated_file(tmp_path):
    path = save_student(build_student("tiny"), tmp_path / "s.safetensors")
    data = path.read_bytes()
    for cut in (4, len(data) // 2, len(data) - 10):
        broken = tmp_path / f"cut{cut}.safetensors"
        broken.write_bytes(data[:cut])
        with pytest.raises(InputError, match="truncated|corrupt"):
            load_student(broken)


def test_missing_file_and_unserialisable_metadata(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_student(tmp_path / "nope.safetensors")
    with pytest.raises(InputError, match="JSON"):
        save_student(build_student("tiny"), tmp_path / "s.safetensors", metadata={"x": object()})


def test_save_is_atomic_on_failure(tmp_path):
    path = save_student(build_student("tiny", seed=1), tmp_path / "s.safetensors")
    before = path.read_bytes()
    with pytest.raises(InputError):
        save_student(build_student("tiny"), path, metadata={"bad": {1, 2}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]
