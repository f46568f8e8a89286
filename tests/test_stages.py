"""Stage cache: skip finished stages, resume interrupted ones, re-run on changed inputs."""

from __future__ import annotations

from pathlib import Path

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


def test_downstream_reruns_when_an_upstream_stage_ran_again(tmp_path):
    """Deleting a finished stage's folder re-runs it with the same inputs; whatever was built
    on its old outputs must be rebuilt, not served from the cache."""
    import shutil

    made = []

    def bench(stage_dir):
        made.append("bench")
        (stage_dir / "numbers").write_text(str(made.count("bench")))
        return {"numbers": str(stage_dir / "numbers")}

    def card(upstream):
        def work(stage_dir):
            made.append("card")
            return {"shows": Path(upstream["numbers"]).read_text()}
        return work

    def pipeline():
        b = run_stage(tmp_path, "bench", {"repeats": 5}, bench, log=lambda m: None)
        return b, run_stage(tmp_path, "card", {"bench": b["key"]}, card(b), log=lambda m: None)

    first_bench, first_card = pipeline()
    again_bench, again_card = pipeline()
    assert again_bench["cached"] and again_card["cached"] and made == ["bench", "card"]
    assert again_bench["key"] == first_bench["key"]

    shutil.rmtree(tmp_path / "bench")
    new_bench, new_card = pipeline()
    assert not new_bench["cached"] and new_bench["key"] != first_bench["key"]
    assert not new_card["cached"] and new_card["shows"] == "2" != first_card["shows"]


def test_a_stage_whose_files_were_deleted_makes_them_again(tmp_path):
    """A finished stage whose recorded file is gone is not served from the cache: it runs
    again in its folder (keeping what is left there, as after an interruption), and the
    stages built on it run again too."""
    made = []

    def train(stage_dir):
        made.append("train")
        runs = made.count("train")
        assert (stage_dir / "log").is_file() == (runs > 1)  # the rest of the folder is kept
        (stage_dir / "log").write_text("epochs")
        (stage_dir / "student.safetensors").write_text(f"weights {runs}")
        return {"student": str(stage_dir / "student.safetensors"), "note": "not/a/path"}

    def evaluate(stage_dir):
        made.append("evaluate")
        return {}

    def pipeline():
        t = run_stage(tmp_path, "train", {"epochs": 3}, train, log=lambda m: None)
        e = run_stage(tmp_path, "eval", {"student": t["key"]}, evaluate, log=lambda m: None)
        return t, e

    first, _ = pipeline()
    assert pipeline()[0]["cached"] and made == ["train", "evaluate"]
    Path(first["student"]).unlink()
    messages = []
    again = run_stage(tmp_path, "train", {"epochs": 3}, train, log=messages.append)
    assert not again["cached"] and again["key"] != first["key"]
    assert Path(again["student"]).read_text() == "weights 2"
    assert any("files are gone" in m and "student.safetensors" in m for m in messages)
    _, evaluated = pipeline()
    assert not evaluated["cached"] and made == ["train", "evaluate", "train", "evaluate"]


def test_records_without_a_run_id_stay_cached_under_their_input_key(tmp_path):
    import json

    from mlff_distiller.stages import STAGE_RECORD, stage_key

    first = run_stage(tmp_path, "s", {"a": 1}, lambda d: {"v": 1}, log=lambda m: None)
    record_path = tmp_path / "s" / STAGE_RECORD
    record = json.loads(record_path.read_text())
    del record["run"]  # as written by earlier versions
    record_path.write_text(json.dumps(record))
    again = run_stage(tmp_path, "s", {"a": 1}, lambda d: {"v": 2}, log=lambda m: None)
    assert again["cached"] and again["v"] == 1 and again["key"] == stage_key({"a": 1})
    assert first["key"] != again["key"]


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
