"""Merge dataset files (shards of one labeling job, or datasets of one teacher) into one."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from mlff_distiller.data.schema import copy_dataset, open_dataset, read_metadata
from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path


def merge_datasets(inputs: list[str | os.PathLike], out_path: str | os.PathLike) -> dict:
    """Concatenate labeled datasets of the same teacher into ``out_path`` (written atomically).

    Shards of one pool (``mlffd label --shard i/n``) are ordered by pool index, so merging all
    shards gives the same labels as one unsharded run; overlapping shards are refused. Files
    from different pools keep their structures; their molecule ids are offset so molecules
    of different pools stay distinct. Splits of the inputs are not carried over (create new
    ones with ``mlffd data split``).

    Returns a summary: structures per input, total, missing shards of each pool.
    """
    paths = [Path(p) for p in inputs]
    out = Path(out_path)
    if not paths:
        raise InputError("data merge: give at least one input dataset")
    if out.exists():
        raise InputError(f"data merge: output {out} exists; choose another --out or delete it")
    if len({p.resolve() for p in paths}) != len(paths):
        raise InputError("data merge: the same input file is listed twice")
    files = [open_dataset(p) for p in paths]
    try:
        metas = [read_metadata(f) for f in files]
        teachers = {(m["teacher"], m["teacher_version"]) for m in metas}
        if len(teachers) > 1:
            listing = ", ".join(f"{p.name}: {m['teacher']} {m['teacher_version']}"
                                for p, m in zip(paths, metas, strict=True))
            raise InputError(f"data merge: inputs were labeled by different teachers "
                             f"({listing}); merge only files of one teacher and version")
        order, offsets, names, missing = _plan(paths, files, metas)
        teacher, version = teachers.pop()
        meta = {"teacher": teacher, "teacher_version": version,
                "recipe": {"merged_from": [{"file": str(paths[k]), "recipe": metas[k].get(
                    "recipe", {}), "shard": metas[k].get("shard", "")} for k in order]},
                "molecule_names": names, "job": {"merged": True},
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        with atomic_path(out) as tmp:
            content_hash = copy_dataset([files[k] for k in order], tmp, meta,
                                        molecule_offsets=[offsets[k] for k in order])
    finally:
        for f in files:
            f.close()
    return {"dataset": str(out), "teacher": teacher, "teacher_version": version,
            "inputs": {str(paths[k]): int(metas[k]["n_structures"]) for k in order},
            "n_structures": sum(int(m["n_structures"]) for m in metas),
            "missing_shards": missing, "content_hash": content_hash}


def _plan(paths, files, metas):
    """Input order (by pool, then first pool index), molecule-id offsets, merged names,
    and missing shards per pool."""
    pools: dict[str, list[int]] = {}
    for k, m in enumerate(metas):
        pool = (m.get("job") or {}).get("pool_sha256") or f"file:{paths[k]}"
        pools.setdefault(pool, []).append(k)
    order, offsets, names, missing = [], {}, {}, {}
    next_id = 0
    for pool, members in pools.items():
        starts = {}
        for k in members:
            src = files[k]["structures"]["source_index"]
            starts[k] = int(src[0]) if src.shape[0] else -1
        members = sorted(members, key=lambda k: starts[k])
        _refuse_overlap(paths, files, members)
        shards = {metas[k].get("shard") for k in members}
        if all("/" in str(s) for s in shards):
            n = int(str(next(iter(shards))).split("/")[1])
            have = {int(str(s).split("/")[0]) for s in shards}
            gaps = [f"{i}/{n}" for i in range(n) if i not in have]
            if gaps:
                missing[pool[:12]] = gaps
        pool_offset, pool_max = next_id, -1
        for k in members:
            mol = files[k]["structures"]["molecule_id"][:]
            offsets[k] = pool_offset
            pool_max = max(pool_max, int(mol.max()) if len(mol) else -1)
            for key, name in (metas[k].get("molecule_names") or {}).items():
                names[str(int(key) + pool_offset)] = name
        next_id = pool_offset + pool_max + 1
        order.extend(members)
    return order, offsets, names, missing


def _refuse_overlap(paths, files, members) -> None:
    seen: dict[int, Path] = {}
    for k in members:
        labeled = files[k]["structures"]["source_index"][:].tolist()
        for i in labeled + files[k]["failures"]["source_index"][:].tolist():
            if i in seen:
                raise InputError(f"data merge: structure {i} of the same pool is in both "
                                 f"{seen[i]} and {paths[k]} (overlapping shards); merge each "
                                 "shard once")
            seen[i] = paths[k]
