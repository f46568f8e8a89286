"""Stage cache: skip finished stages, resume interrupted ones, re-run on changed inputs."""

from __future__ import annotations

import pytest

from mlff_distiller.stages import run_stage


def test_cached_resumed_and_invalidated(tmp_path):
    calls = []

    def work(stage_dir):
        calls.append(stage_dir)
        (stage_dir / "partial").write_text("x")
        return {"value": len(calls)}

    first = run_stage(tmp_path, "s", {"a": 1}, work, log=lambda m: None)
    assert first["value"] == 1 and not first["cached"]
    again = run_stage(tmp_path, "s", {"a": 1}, work, log=lambda m: None)
    assert again == {**first, "cached": True} and len(calls) == 1

    changed = run_stage(tmp_path, "s", {"a": 2}, work, log=lambda m: None)
    assert changed["value"] == 2 and changed["key"] != first["key"]


def test_interrupted_stage_keeps_its_work_and_resumes(tmp_path):
    def crash(stage_dir):
        (stage_dir / "chunk0").write_text("done")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp_path, "label", {"n": 3}, crash, log=lambda m: None)

    def resume(stage_dir):
        assert (stage_dir / "chunk0").read_text() == "done"
        return {"resumed": True}

    assert run_stage(tmp_path, "label", {"n": 3}, resume, log=lambda m: None)["resumed"]

    def fresh(stage_dir):
        assert not (stage_dir / "chunk0").exists()
        return {}

    run_stage(tmp_path, "label", {"n": 4}, fresh, log=lambda m: None)


def test_atomic_writes_have_ordinary_permissions(tmp_path):
    import os

    from mlff_distiller.fileio import write_json

    path = write_json(tmp_path / "r.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
