"""Stage caching for `mlffd distill`: each stage is keyed by the hash of its inputs.

A stage runs in its own directory ``RUN/NAME/``. Before it starts, the stage's inputs are
written to ``inputs.json``; when it finishes, ``stage.json`` records the key and outputs.

- ``stage.json`` present with the same key: the stage is skipped (cached).
- ``inputs.json`` present with the same key but no ``stage.json``: an interrupted run; the
  stage function runs again in the same directory and resumes from what it left there
  (labeling and training resume by themselves).
- a different key: the stage's inputs changed, so its directory is cleared and it re-runs.
- ``stage.json`` present with the same key, but a file it lists in the stage's directory is
  gone (deleted or moved by hand): the stage runs again in its directory, as after an
  interruption, and makes its files anew.

The ``key`` a stage returns names its finished *run*, not only its inputs: a stage that runs
again (its inputs changed, or its directory was deleted) returns a new key. Downstream stages
put upstream keys in their inputs, so they re-run whenever an upstream stage did, and never
keep results built from files that have since been replaced.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlff_distiller.fileio import write_json

STAGE_RECORD = "stage.json"
STAGE_INPUTS = "inputs.json"


def stage_key(inputs: dict[str, Any]) -> str:
    """Stable hash of a JSON-serialisable input description."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_stage(
    run_dir: Path,
    name: str,
    inputs: dict[str, Any],
    work: Callable[[Path], dict[str, Any]],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``work(stage_dir) -> outputs`` unless a finished run with the same inputs exists.

    Returns the stage's outputs plus ``key`` (the id of the finished run that made them, for
    downstream stages' inputs) and ``cached`` (bool).
    """
    stage_dir = Path(run_dir) / name
    key = stage_key(inputs)
    record_path = stage_dir / STAGE_RECORD
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        missing = missing_outputs(record.get("outputs", {}), stage_dir)
        if record.get("key") == key and not missing:
            log(f"[{name}] cached ({key})")
            # records written before runs had ids stand for their inputs' hash
            return {**record["outputs"], "key": record.get("run", key), "cached": True}
        if record.get("key") == key:
            log(f"[{name}] {len(missing)} of its files are gone (e.g. {missing[0]}): "
                f"making them again")
            record_path.unlink()
    inputs_path = stage_dir / STAGE_INPUTS
    if stage_dir.exists():
        previous = json.loads(inputs_path.read_text()).get("key") if inputs_path.is_file() else None
        if previous != key:
            log(f"[{name}] inputs changed: clearing {stage_dir}")
            shutil.rmtree(stage_dir)
        else:
            log(f"[{name}] resuming an interrupted run ({key})")
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json(inputs_path, {"key": key, "inputs": inputs})
    started = time.time()
    outputs = work(stage_dir)
    run = stage_key({"key": key, "finished_ns": time.time_ns(), "nonce": secrets.token_hex(8)})
    write_json(record_path, {
        "key": key, "run": run, "outputs": outputs, "seconds": round(time.time() - started, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return {**outputs, "key": run, "cached": False}


def missing_outputs(outputs: Any, stage_dir: Path) -> list[str]:
    """The paths in a stage's recorded ``outputs`` (strings anywhere in its dicts and lists)
    that name a file or folder inside ``stage_dir`` that no longer exists."""
    inside = str(Path(stage_dir)) + "/"
    if isinstance(outputs, dict):
        return [m for v in outputs.values() for m in missing_outputs(v, stage_dir)]
    if isinstance(outputs, list | tuple):
        return [m for v in outputs for m in missing_outputs(v, stage_dir)]
    if isinstance(outputs, str) and outputs.startswith(inside) and not Path(outputs).exists():
        return [outputs]
    return []
