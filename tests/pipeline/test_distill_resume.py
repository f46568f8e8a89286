"""`mlffd distill` end to end on GFN2-xTB: kill -9 mid-stage, resume, cache, gates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlff_distiller import InputError, load_student
from mlff_distiller.report.zoo_release import release_zoo

pytest.importorskip("tblite")

MOLECULES = "O water\nN ammonia\nC methane\nCO methanol\nC=O formaldehyde\nCCO ethanol\n"


def _config(tmp_path: Path) -> Path:
    smiles = tmp_path / "mols.smi"
    smiles.write_text(MOLECULES)
    config = {
        "run_dir": str(tmp_path / "run"), "teacher": "xtb", "students": ["ultra-tiny"],
        "generate": {"smiles": str(smiles), "conformers": 1,
                     "rattle": {"n": 6, "sigma": [0.02, 0.08]}},
        "split": {"ratios": [0.5, 0.25, 0.25], "seed": 1},
        "onpolicy": {"rounds": 1, "molecules": 2, "md_steps": 20, "stride": 5,
                     "frames_per_molecule": 2, "temperature_K": 400},
        "train": {"max_steps": 150, "max_epochs": 1000, "batch_size": 4, "progress": False,
                  "checkpoint_every_steps": 5, "warmup_steps": 5, "num_threads": 1},
        "md": {"n_molecules": 1, "nve_steps": 20, "nvt_steps": 20, "conformers": 1,
               "max_opt_steps": 20},
        "export": {"formats": ["torchscript"]},
        "bench": {"formats": ["eager"], "batch_sizes": [1], "threads": [1], "repeats": 2},
        "gates": {"min_force_r2": -1e9},
    }
    path = tmp_path / "distill.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _distill(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from mlff_distiller.cli import main; main()", "distill",
            str(config), *extra]


@pytest.mark.slow
def test_kill_mid_training_then_resume_and_cache(tmp_path):
    config = _config(tmp_path)
    run = tmp_path / "run"
    proc = subprocess.Popen(_distill(config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    state = run / "train-ultra-tiny" / "run" / "training_state.safetensors"
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"distill ended before training checkpointed:\n{proc.stdout.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "train-ultra-tiny" / "stage.json").exists()
    labeled_before = (run / "label" / "data.h5").stat().st_mtime_ns

    resumed = subprocess.run(_distill(config), capture_output=True, text=True)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log
    for name in ("generate", "label", "split"):
        assert f"[{name}] cached" in log
    assert "[train-ultra-tiny] resuming an interrupted run" in log
    assert (run / "label" / "data.h5").stat().st_mtime_ns == labeled_before
    summary = json.loads((run / "summary.json").read_text())
    assert summary["passed"] and summary["students"]["ultra-tiny"]["verdict"] == "PASS"
    report = Path(summary["report"]).read_text()
    assert "ultra-tiny" in report and "card" in report
    _check_onpolicy_round(run, summary)
    _check_zoo_release(run, summary, tmp_path)

    # A later stage's config change re-runs that stage only; a failing gate exits 1.
    again = subprocess.run(_distill(config, "--set", "bench.repeats=3",
                                    "--set", "gates.max_force_mae=0.0"),
                           capture_output=True, text=True)
    log = again.stdout + again.stderr
    assert again.returncode == 1, log
    for name in ("train-ultra-tiny", "evaluate-ultra-tiny", "md-ultra-tiny", "export-ultra-tiny"):
        assert f"[{name}] cached" in log
    assert "[bench] cached" not in log
    assert "FAIL" in log and "max_force_mae" in log
    with pytest.raises(InputError, match="max_force_mae"):
        release_zoo(run, zoo_dir=tmp_path / "zoo2", docs_dir=tmp_path / "docs2")


def _check_zoo_release(run: Path, summary: dict, tmp_path: Path) -> None:
    """Released files equal the run's students, carry the command, and the docs stand alone."""
    import re

    from mlff_distiller.testing import predict, random_molecule

    released = release_zoo(run, command="mlffd distill CONFIG", zoo_dir=tmp_path / "zoo",
                           docs_dir=tmp_path / "docs")
    zoo_file = Path(released["sevennet-organic-ultra-tiny"])
    assert zoo_file.name == "sevennet-organic-ultra-tiny.safetensors"
    shipped = load_student(zoo_file)
    trained = load_student(summary["students"]["ultra-tiny"]["student"])
    meta = shipped.checkpoint_metadata
    assert meta["command"] == "mlffd distill CONFIG" and meta["preset"] == "ultra-tiny"
    assert meta["holdout"]["force_r2"] == summary["students"]["ultra-tiny"]["forces"]["r2"]
    atoms = random_molecule(8, seed=3)
    assert predict(shipped, atoms)["forces"].tolist() == predict(trained, atoms)["forces"].tolist()
    doc = (tmp_path / "docs" / "zoo.md").read_text()
    assert "`sevennet-organic-ultra-tiny`" in doc and "## On-policy augmentation" in doc
    card = tmp_path / "docs" / "zoo" / "sevennet-organic-ultra-tiny" / "card.md"
    text = card.read_text()
    assert "mlffd distill CONFIG" in text
    links = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert links and all((card.parent / link).is_file() for link in links)


def _check_onpolicy_round(run: Path, summary: dict) -> None:
    """Round 1 added teacher-labeled student-MD frames of training molecules only."""
    import h5py

    assert [r["round"] for r in summary["onpolicy_rounds"]] == [0, 1]
    with h5py.File(run / "split" / "data.h5") as before, \
            h5py.File(run / "onpolicy-r1" / "data.h5") as after:
        n_before = before["structures"]["energy"].shape[0]
        n_after = after["structures"]["energy"].shape[0]
        assert 0 < n_after - n_before <= 4
        for name in ("train", "val", "test"):
            assert before["splits"][name][:].tolist() == after["splits"][name][:].tolist()
        new_molecules = set(after["structures"]["molecule_id"][n_before:].tolist())
        assert new_molecules <= set(before["splits"]["train"][:].tolist())
