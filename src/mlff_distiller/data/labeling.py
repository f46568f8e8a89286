"""Label a structure pool with a teacher into a dataset file, resumably and in parallel.

Crash safety: each finished chunk is written to its own file under ``OUT.parts/`` (written to
a temporary name, fsynced, renamed), so a chunk is either complete or absent. When every
chunk exists they are concatenated into ``OUT`` the same way (temporary file, rename). A
``kill -9`` at any moment loses at most the chunks in flight; running the same command again
labels only the missing chunks. ``OUT`` itself is never written in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mlff_distiller.data.dataset import labels_to_block
from mlff_distiller.data.executors import make_executor
from mlff_distiller.data.schema import (
    DatasetWriter,
    copy_dataset,
    open_dataset,
    read_failures,
    read_metadata,
)
from mlff_distiller.errors import InputError
from mlff_distiller.fileio import write_json

MOLECULE_KEY = "molecule_id"  # atoms.info key naming the source molecule
NAME_KEY = "molecule_name"  # optional human-readable name beside an integer id


def read_pool(pool_path: str | os.PathLike) -> list:
    """All structures of a file ASE reads (extxyz, xyz, sdf, ...); InputError if none."""
    from mlff_distiller.structures.sources import read_structure_file

    return read_structure_file(pool_path, "structure pool",
                               hint="; create one with `mlffd generate`")


def molecule_ids(structures: list) -> tuple[np.ndarray, dict[int, str] | None]:
    """Molecule id of each structure from ``info['molecule_id']``.

    Integer ids are kept (``info['molecule_name']`` gives their names where present).
    Otherwise every distinct value (a string id, or the chemical formula where the key is
    missing) gets an integer in sorted order, and the names are returned.
    """
    raw = [atoms.info.get(MOLECULE_KEY) for atoms in structures]
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in raw):
        names = {int(v): str(a.info[NAME_KEY]) for v, a in zip(raw, structures, strict=True)
                 if NAME_KEY in a.info}
        return np.asarray(raw, dtype=np.int64), names or None
    names = [str(v) if v is not None else f"formula:{a.get_chemical_formula()}"
             for v, a in zip(raw, structures, strict=True)]
    table = {name: k for k, name in enumerate(sorted(set(names)))}
    return (np.asarray([table[n] for n in names], np.int64),
            {k: name for name, k in table.items()})


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    if shard is None:
        return None
    try:
        i, n = (int(x) for x in (shard.split("/") if isinstance(shard, str) else shard))
    except (ValueError, TypeError):
        raise InputError(f"--shard {shard!r}: expected 'i/n' with integers, e.g. 0/4") from None
    if not 0 <= i < n:
        raise InputError(f"--shard {shard!r}: expected 0 <= i < n, e.g. 0/4 ... 3/4")
    return i, n


def shard_range(n_pool: int, shard: tuple[int, int] | None) -> range:
    """The contiguous block of pool indices of shard i of n (all indices without a shard)."""
    if shard is None:
        return range(n_pool)
    i, n = shard
    return range(i * n_pool // n, (i + 1) * n_pool // n)


def label_structures(
    pool_path: str | os.PathLike,
    teacher,
    out_path: str | os.PathLike,
    workers: int = 1,
    chunk_size: int = 32,
    hessian_rows: int = 0,
    ray_address: str | None = None,
    shard: str | tuple[int, int] | None = None,
    seed: int = 0,
    teacher_weights: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Label every structure of ``pool_path`` (or one shard) into ``out_path``; resumable.

    Args:
        pool_path: structures (extxyz from ``mlffd generate``); ``info['molecule_id']``
            gives each one's molecule (for splits).
        teacher: a teacher spec (``"sevennet"``, ``"xtb"``, ...) or a ``Teacher`` instance.
        out_path: the dataset file; ``OUT.parts/`` holds finished chunks until the end and
            ``OUT`` with suffix ``.summary.json`` gets the summary.
        workers: local worker processes (each with its own teacher), or CPU actors on Ray.
        chunk_size: structures per chunk (the unit of work and of crash recovery).
        hessian_rows: Hessian rows per structure (0 = none), chosen with ``seed + index``.
        ray_address: label on a Ray cluster (``"auto"``, ``"ray://host:port"``, ``"local"``).
        shard: ``"i/n"``: label only the i-th of n contiguous blocks of the pool.
        seed: seeds the Hessian row choice; structure k of the pool uses ``seed + k``.
        teacher_weights, device: passed to ``load_teacher`` for spec strings.
        progress: show a progress bar.

    Returns:
        The summary dict (also written as JSON beside the dataset).
    """
    out = Path(out_path)
    if chunk_size < 1:
        raise InputError(f"--chunk-size must be >= 1, got {chunk_size}")
    if hessian_rows < 0:
        raise InputError(f"--hessian-rows must be >= 0, got {hessian_rows}")
    pool_path = Path(pool_path)
    structures = read_pool(pool_path)
    shard_t = parse_shard(shard)
    indices = shard_range(len(structures), shard_t)
    if len(indices) == 0:
        raise InputError(f"shard {shard} of a pool of {len(structures)} structures is empty; "
                         "use fewer shards")
    mol_ids, mol_names = molecule_ids(structures)
    job = {"pool_sha256": _sha256(pool_path), "n_pool": len(structures),
           "teacher": teacher if isinstance(teacher, str) else str(teacher.name),
           "hessian_rows": hessian_rows, "seed": seed, "chunk_size": chunk_size,
           "shard": None if shard_t is None else f"{shard_t[0]}/{shard_t[1]}"}
    if out.exists():
        return _already_done(out, job)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    with _locked(parts):
        _check_manifest(parts, job)
        chunks = [indices[k:k + chunk_size] for k in range(0, len(indices), chunk_size)]
        todo = [k for k in range(len(chunks)) if not _chunk_path(parts, k).exists()]
        start = time.perf_counter()
        executor = make_executor(teacher, workers, ray_address, teacher_weights, device)
        try:
            info = executor.describe()
            startup = time.perf_counter() - start
            start = time.perf_counter()
            _check_elements(info, [structures[i] for i in indices])
            _check_done_chunks(parts, len(chunks), todo, info)
            meta = {"teacher": info.name, "teacher_version": info.version, "job": job,
                    "recipe": _recipe(pool_path, structures, job), "shard": job["shard"] or "",
                    "molecule_names": mol_names or {}}
            work = ((k, [structures[i] for i in chunks[k]], seed + chunks[k].start)
                    for k in todo)
            n_new = sum(len(chunks[k]) for k in todo)
            with progress_bar(progress, n_new, f"labeling with {info.name}") as advance:
                for k, results in executor.run(work, hessian_rows):
                    _write_chunk(parts, k, chunks[k], structures, results, mol_ids, meta)
                    advance(len(chunks[k]))
            seconds = time.perf_counter() - start
        finally:
            executor.close()
        _assemble(parts, out, len(chunks), meta)
    shutil.rmtree(parts, ignore_errors=True)
    summary = _summary(out, job, n_new=n_new, seconds=seconds, resumed=len(chunks) - len(todo),
                       backend=executor.backend, workers=executor.n_workers)
    summary["startup_seconds"] = round(startup, 3)  # starting workers and loading teachers
    write_json(summary_path(out), summary)
    return summary


def summary_path(out: Path) -> Path:
    return out.with_name(out.stem + ".summary.json")


def _check_elements(info, structures: list) -> None:
    """``Teacher.check_elements`` from a worker's description (no teacher in this process)."""
    from mlff_distiller.teachers.base import Teacher

    Teacher.check_elements(SimpleNamespace(name=info.name,
                                           supported_elements=info.supported_elements),
                           structures)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recipe(pool_path: Path, structures: list, job: dict) -> dict:
    methods = Counter(str(a.info.get("method", "unknown")) for a in structures)
    return {"pool": str(pool_path), "pool_sha256": job["pool_sha256"],
            "n_pool": len(structures), "methods": dict(methods),
            "hessian_rows": job["hessian_rows"], "seed": job["seed"]}


def _already_done(out: Path, job: dict) -> dict:
    with open_dataset(out) as f:
        meta = read_metadata(f)
    if meta.get("job") != job:
        raise InputError(
            f"{out} already exists and was not written by this labeling job (pool, teacher, "
            "shard or settings differ); choose another --out or delete the file to relabel")
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    try:  # the summary of the run that finished it, if it got that far
        summary = json.loads(summary_path(out).read_text())
    except (OSError, json.JSONDecodeError):
        summary = _summary(out, job, n_new=0, seconds=0.0, resumed=0, backend="none",
                           workers=0)
        write_json(summary_path(out), summary)
    return {**summary, "already_complete": True}


@contextlib.contextmanager
def _locked(parts: Path) -> Iterator[None]:
    with open(parts / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{parts}: another labeling process is writing this dataset; "
                             "wait for it or stop it first") from None
        for stale in parts.glob(".*.tmp"):  # a write interrupted by a crash
            stale.unlink()
        yield


def _check_manifest(parts: Path, job: dict) -> None:
    manifest = parts / "job.json"
    if manifest.exists():
        previous = json.loads(manifest.read_text())
        if previous != job:
            diff = sorted(k for k in set(job) | set(previous) if job.get(k) != previous.get(k))
            raise InputError(
                f"{parts} holds chunks of an interrupted run with different {diff}; rerun with "
                f"the same settings to resume, or delete {parts} to start over")
    else:
        write_json(manifest, job)


def _chunk_path(parts: Path, k: int) -> Path:
    return parts / f"chunk-{k:06d}.h5"


def _check_done_chunks(parts: Path, n_chunks: int, todo: list[int], info) -> None:
    for k in sorted(set(range(n_chunks)) - set(todo)):
        with open_dataset(_chunk_path(parts, k)) as f:
            meta = read_metadata(f)
        if (meta["teacher"], meta["teacher_version"]) != (info.name, info.version):
            raise InputError(
                f"{parts}: finished chunks were labeled by {meta['teacher']} "
                f"{meta['teacher_version']}, this run's teacher is {info.name} {info.version}; "
                f"delete {parts} to relabel with the new teacher")


def _write_chunk(parts: Path, k: int, indices: range, structures: list, results: list,
                 mol_ids: np.ndarray, meta: dict) -> None:
    from mlff_distiller.teachers.base import LabelFailure

    ok = [(i, r) for i, r in zip(indices, results, strict=True)
          if not isinstance(r, LabelFailure)]
    failed = [(i, r.reason) for i, r in zip(indices, results, strict=True)
              if isinstance(r, LabelFailure)]
    block = labels_to_block([structures[i] for i, _ in ok], [r for _, r in ok],
                            [mol_ids[i] for i, _ in ok], [i for i, _ in ok])
    tmp = parts / f".chunk-{k:06d}.tmp"
    writer = DatasetWriter(tmp)
    try:
        writer.append(block)
        writer.add_failures([i for i, _ in failed], [r for _, r in failed])
        writer.finish({**meta, "created": _now()})
    except BaseException:
        writer.abort()
        raise
    os.replace(tmp, _chunk_path(parts, k))
    _fsync_dir(parts)


def _assemble(parts: Path, out: Path, n_chunks: int, meta: dict) -> None:
    import h5py

    tmp = parts / ".assembled.tmp"
    copy_dataset([_chunk_path(parts, k) for k in range(n_chunks)], tmp,
                 {**meta, "created": _now()})
    with h5py.File(tmp, "r"):  # readable before it takes the final name
        pass
    os.replace(tmp, out)
    _fsync_dir(out.parent)


def _summary(out: Path, job: dict, n_new: int, seconds: float, resumed: int, backend: str,
             workers: int) -> dict:
    with open_dataset(out) as f:
        meta = read_metadata(f)
        failures = read_failures(f)
    return {
        "dataset": str(out), "teacher": meta["teacher"],
        "teacher_version": meta["teacher_version"], "pool": meta["recipe"]["pool"],
        "n_pool": job["n_pool"], "shard": job["shard"],
        "n_labeled": int(meta["n_structures"]), "n_failed": len(failures),
        "n_atoms": int(meta["n_atoms"]),
        "failures": [{"index": i, "reason": r} for i, r in failures[:50]],
        "n_labeled_this_run": n_new, "chunks_resumed": resumed, "backend": backend,
        "workers": workers, "seconds": round(seconds, 3),  # labeling and writing chunks
        "structures_per_second": round(n_new / seconds, 3) if seconds > 0 else None,
        "content_hash": meta["content_hash"],
    }


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, description: str):
    """A rich progress bar of ``total`` items; yields ``advance(n)`` (a no-op when disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), transient=False,
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
