"""The labeled HDF5 dataset file: schema constants, a block of structures, writer, reader.

Layout (schema version 1, documented in ``docs/dataset.md``)::

    /                 attrs: format, schema_version, units (JSON), teacher, teacher_version,
                             recipe (JSON), created, content_hash, n_structures, n_atoms
    /atoms/           per-atom arrays, concatenated over structures
        atomic_numbers (N,) uint8
        positions      (N, 3) float64, Å
        forces         (N, 3) float64, eV/Å
    /structures/      per-structure arrays
        energy (B,) float64 eV; cell (B, 3, 3) Å; pbc (B, 3) bool; n_atoms (B,) int64;
        offset (B,) int64 (first atom); molecule_id (B,) int64; source_index (B,) int64
        (row in the labeled pool); stress (B, 3, 3) eV/Å^3 (only if any structure has
        stress; NaN rows where absent); hessian_count (B,) int64 (only with Hessian rows)
    /hessian/         row_index (R,) int64 (3 * atom + axis within its structure),
                      values (V,) float64 eV/Å^2 (structure s contributes count_s * 3 n_s)
    /failures/        source_index (F,) int64, reason (F,) str
    /splits/          train / val / test: molecule ids (int64), attrs method, seed, ratios

All arrays are chunked and gzip-compressed. Files are always written to a temporary path and
renamed into place, so a reader never sees a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mlff_distiller.errors import InputError

FORMAT = "mlff-distiller-labeled-dataset"
SCHEMA_VERSION = 1
UNITS = {"positions": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3",
         "hessian": "eV/Å^2", "cell": "Å"}
SPLIT_NAMES = ("train", "val", "test")

_ATOM_CHUNK = 2048  # rows per compressed chunk of per-atom arrays (small: random access)
_STRUCT_CHUNK = 1024
_VALUE_CHUNK = 16384
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
CACHE_BYTES = 32 * 1024**2  # HDF5 chunk cache per open file


@dataclass
class Block:
    """Consecutive labeled structures as flat numpy arrays (B structures, N atoms)."""

    numbers: np.ndarray  # (N,) uint8
    positions: np.ndarray  # (N, 3) float64, Å
    forces: np.ndarray  # (N, 3) float64, eV/Å
    energy: np.ndarray  # (B,) float64, eV
    cell: np.ndarray  # (B, 3, 3) float64, Å
    pbc: np.ndarray  # (B, 3) bool
    n_atoms: np.ndarray  # (B,) int64
    molecule_id: np.ndarray  # (B,) int64
    source_index: np.ndarray  # (B,) int64
    stress: np.ndarray  # (B, 3, 3) float64, eV/Å^3, NaN where absent
    hessian_count: np.ndarray  # (B,) int64, Hessian rows per structure
    hessian_index: np.ndarray  # (R,) int64
    hessian_values: np.ndarray  # (V,) float64, eV/Å^2

    def __len__(self) -> int:
        return len(self.energy)

    @staticmethod
    def empty() -> Block:
        return Block(
            np.zeros(0, np.uint8), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0),
            np.zeros((0, 3, 3)), np.zeros((0, 3), bool), np.zeros(0, np.int64),
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3, 3)),
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
        )

    @staticmethod
    def concatenate(blocks: list[Block]) -> Block:
        if not blocks:
            return Block.empty()
        return Block(**{f.name: np.concatenate([getattr(b, f.name) for b in blocks])
                        for f in fields(Block)})


# (group, name, Block field, chunk rows, dtype)
_ARRAYS = (
    ("atoms", "atomic_numbers", "numbers", _ATOM_CHUNK, np.uint8),
    ("atoms", "positions", "positions", _ATOM_CHUNK, np.float64),
    ("atoms", "forces", "forces", _ATOM_CHUNK, np.float64),
    ("structures", "energy", "energy", _STRUCT_CHUNK, np.float64),
    ("structures", "cell", "cell", _STRUCT_CHUNK, np.float64),
    ("structures", "pbc", "pbc", _STRUCT_CHUNK, np.bool_),
    ("structures", "n_atoms", "n_atoms", _STRUCT_CHUNK, np.int64),
    ("structures", "molecule_id", "molecule_id", _STRUCT_CHUNK, np.int64),
    ("structures", "source_index", "source_index", _STRUCT_CHUNK, np.int64),
)
_OPTIONAL = (  # created on first use, earlier rows back-filled with `fill`
    ("structures", "stress", "stress", _STRUCT_CHUNK, np.float64, np.nan),
    ("structures", "hessian_count", "hessian_count", _STRUCT_CHUNK, np.int64, 0),
    ("hessian", "row_index", "hessian_index", _VALUE_CHUNK, np.int64, None),
    ("hessian", "values", "hessian_values", _VALUE_CHUNK, np.float64, None),
)


class DatasetWriter:
    """Appends blocks to a new HDF5 file (resizable, chunked datasets).

    Used on temporary paths only; callers rename the finished file into place.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import h5py

        self.path = Path(path)
        self.file = h5py.File(self.path, "w")
        self.n_structures = 0
        self.n_atoms = 0
        self._hashers: dict[str, hashlib._Hash] = {}
        for group, name, _, chunk, dtype in _ARRAYS:
            self._create(group, name, chunk, dtype, 0)
        self._failure_index: list[int] = []
        self._failure_reason: list[str] = []

    def _create(self, group: str, name: str, chunk: int, dtype, length: int, fill=None):
        shape_tail = {"positions": (3,), "forces": (3,), "cell": (3, 3), "pbc": (3,),
                      "stress": (3, 3)}.get(name, ())
        ds = self.file.require_group(group).create_dataset(
            name, shape=(length, *shape_tail), maxshape=(None, *shape_tail), dtype=dtype,
            chunks=(chunk, *shape_tail), **_COMPRESSION,
        )
        if length and fill is not None:
            ds[:] = fill
        return ds

    def _append(self, group: str, name: str, values: np.ndarray) -> None:
        ds = self.file[group][name]
        start = ds.shape[0]
        ds.resize(start + len(values), axis=0)
        if len(values):
            ds[start:] = values
        digest = self._hashers.setdefault(f"{group}/{name}", hashlib.sha256())
        digest.update(np.ascontiguousarray(values, dtype=ds.dtype).tobytes())

    def append(self, block: Block) -> None:
        """Append structures; their atom offsets continue from those already written."""
        if len(block) == 0:
            return
        has_stress = bool(np.isfinite(block.stress).any())
        has_hessian = bool(block.hessian_count.any())
        for group, name, attr, chunk, dtype, fill in _OPTIONAL:
            needed = has_stress if name == "stress" else has_hessian
            if needed and name not in self.file.get(group, {}):
                length = self.n_structures if fill is not None else 0
                self._create(group, name, chunk, dtype, length, fill)
                if length:  # back-filled rows enter the hash like appended ones
                    digest = self._hashers.setdefault(f"{group}/{name}", hashlib.sha256())
                    digest.update(np.ascontiguousarray(self.file[group][name][:]).tobytes())
            if group in self.file and name in self.file[group]:
                self._append(group, name, getattr(block, attr))
        for group, name, attr, _, dtype in _ARRAYS:
            self._append(group, name, np.asarray(getattr(block, attr), dtype=dtype))
        offsets = self.n_atoms + np.concatenate([[0], np.cumsum(block.n_atoms)[:-1]])
        self._append_plain("structures", "offset", offsets.astype(np.int64))
        self.n_structures += len(block)
        self.n_atoms += int(block.n_atoms.sum())

    def _append_plain(self, group: str, name: str, values: np.ndarray) -> None:
        if name not in self.file[group]:
            self._create(group, name, _STRUCT_CHUNK, np.int64, 0)
        ds = self.file[group][name]
        start = ds.shape[0]
        ds.resize(start + len(values), axis=0)
        ds[start:] = values

    def add_failures(self, source_index: list[int], reasons: list[str]) -> None:
        self._failure_index.extend(int(i) for i in source_index)
        self._failure_reason.extend(str(r) for r in reasons)

    def finish(self, metadata: dict) -> str:
        """Write failures and attributes, close the file, fsync it; return the content hash."""
        import h5py

        if "offset" not in self.file["structures"]:
            self._append_plain("structures", "offset", np.zeros(0, np.int64))
        group = self.file.require_group("failures")
        group.create_dataset("source_index", data=np.asarray(self._failure_index, np.int64))
        group.create_dataset("reason", data=np.asarray(self._failure_reason, dtype=object),
                             dtype=h5py.string_dtype())
        content_hash = hashlib.sha256(
            "".join(f"{k}:{self._hashers[k].hexdigest()};" for k in sorted(self._hashers))
            .encode()).hexdigest()
        attrs = {"format": FORMAT, "schema_version": SCHEMA_VERSION,
                 "units": json.dumps(UNITS, ensure_ascii=False), "content_hash": content_hash,
                 "n_structures": self.n_structures, "n_atoms": self.n_atoms}
        for key, value in metadata.items():
            if key in attrs or key == "schema_version":
                continue
            attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        for key, value in attrs.items():
            self.file.attrs[key] = value
        self.file.close()
        with open(self.path, "rb+") as fh:
            os.fsync(fh.fileno())
        return content_hash

    def abort(self) -> None:
        self.file.close()


def open_dataset(path: str | os.PathLike, mode: str = "r"):
    """Open and validate a labeled dataset file; :class:`InputError` on anything else.

    Checks that it is readable HDF5, has this project's format and schema version, and that
    its arrays are mutually consistent. Never modifies the file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"dataset {path}: no such file; create it with `mlffd label` "
                         "or `mlffd data import`")
    try:
        f = h5py.File(path, mode, rdcc_nbytes=CACHE_BYTES)
    except OSError as exc:
        raise InputError(
            f"dataset {path}: not a readable HDF5 file (corrupt or truncated: {exc}); the file "
            "was left untouched; relabel or restore it from a copy") from None
    try:
        _validate(f, path)
    except InputError:
        f.close()
        raise
    except Exception as exc:  # noqa: BLE001 - any read error here means a damaged file
        f.close()
        raise InputError(f"dataset {path}: damaged file ({type(exc).__name__}: {exc}); "
                         "the file was left untouched; relabel or restore it") from None
    return f


def _validate(f, path: Path) -> None:
    fmt = f.attrs.get("format")
    if fmt != FORMAT:
        raise InputError(f"dataset {path}: not an mlff-distiller labeled dataset (format "
                         f"attribute {fmt!r}, expected {FORMAT!r}); import extxyz files with "
                         "`mlffd data import`")
    version = int(f.attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        raise InputError(
            f"dataset {path}: written with schema version {version}, this mlff-distiller reads "
            f"version {SCHEMA_VERSION}; relabel with this version or export it to extxyz with "
            "the version that wrote it and `mlffd data import` it here")
    for group, name, *_ in _ARRAYS:
        if group not in f or name not in f[group]:
            raise InputError(f"dataset {path}: missing array /{group}/{name}; the file is "
                             "damaged; relabel it")
    s = f["structures"]
    n_struct, n_atoms = s["energy"].shape[0], f["atoms"]["positions"].shape[0]
    counts = s["n_atoms"][:]
    if (int(counts.sum()) != n_atoms or f["atoms"]["forces"].shape[0] != n_atoms
            or any(s[k].shape[0] != n_struct for k in ("cell", "pbc", "n_atoms", "offset",
                                                        "molecule_id", "source_index"))
            or int(f.attrs.get("n_structures", -1)) != n_struct):
        raise InputError(f"dataset {path}: array lengths disagree (damaged or truncated "
                         "file); relabel it")


def read_block(f, start: int, stop: int) -> Block:
    """Structures ``start:stop`` of an open dataset as a :class:`Block`."""
    s, a = f["structures"], f["atoms"]
    n_atoms = s["n_atoms"][start:stop]
    if stop > start:
        first = int(s["offset"][start])
        last = first + int(n_atoms.sum())
    else:
        first = last = 0
    count = s["hessian_count"][start:stop] if "hessian_count" in s else np.zeros(
        len(n_atoms), np.int64)
    index = values = np.zeros(0)
    if count.any():
        all_count = s["hessian_count"][:]
        all_values = all_count * 3 * s["n_atoms"][:]
        r0, v0 = int(all_count[:start].sum()), int(all_values[:start].sum())
        index = f["hessian"]["row_index"][r0:r0 + int(count.sum())]
        values = f["hessian"]["values"][v0:v0 + int(all_values[start:stop].sum())]
    stress = s["stress"][start:stop] if "stress" in s else np.full((len(n_atoms), 3, 3), np.nan)
    return Block(
        numbers=a["atomic_numbers"][first:last], positions=a["positions"][first:last],
        forces=a["forces"][first:last], energy=s["energy"][start:stop],
        cell=s["cell"][start:stop], pbc=s["pbc"][start:stop], n_atoms=n_atoms,
        molecule_id=s["molecule_id"][start:stop], source_index=s["source_index"][start:stop],
        stress=stress, hessian_count=count.astype(np.int64),
        hessian_index=np.asarray(index, np.int64), hessian_values=np.asarray(values, float),
    )


def read_metadata(f) -> dict:
    """File attributes as a dict, JSON-valued ones decoded."""
    out = {}
    for key, value in f.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, str) and value[:1] in "{[":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


def read_failures(f) -> list[tuple[int, str]]:
    """(source index, reason) of every structure the teacher failed on."""
    if "failures" not in f:
        return []
    reasons = [r.decode() if isinstance(r, bytes) else str(r) for r in f["failures"]["reason"][:]]
    return list(zip(f["failures"]["source_index"][:].tolist(), reasons, strict=True))


def copy_dataset(inputs: list, out_path: str | os.PathLike, metadata: dict,
                 molecule_offsets: list[int] | None = None, window: int = 4096) -> str:
    """Concatenate datasets into a new file at ``out_path`` (a temporary path), streaming
    ``window`` structures at a time; returns the content hash.

    ``inputs`` are open files or paths; paths are opened one at a time (any number of them).
    """
    writer = DatasetWriter(out_path)
    pending: list[Block] = []  # small inputs are buffered: HDF5 appends in whole windows

    def flush() -> None:
        writer.append(Block.concatenate(pending))
        pending.clear()

    try:
        for k, item in enumerate(inputs):
            opened = isinstance(item, (str, os.PathLike))
            f = open_dataset(item) if opened else item
            try:
                n = f["structures"]["energy"].shape[0]
                for start in range(0, n, window):
                    block = read_block(f, start, min(n, start + window))
                    if molecule_offsets is not None:
                        block.molecule_id = block.molecule_id + molecule_offsets[k]
                    pending.append(block)
                    if sum(len(b) for b in pending) >= window:
                        flush()
                failures = read_failures(f)
                writer.add_failures([i for i, _ in failures], [r for _, r in failures])
            finally:
                if opened:
                    f.close()
        flush()
        return writer.finish(metadata)
    except BaseException:
        writer.abort()
        raise
