"""Student checkpoints: save/load in a matched pair.

One safetensors file holds the weights and, in its string metadata, everything needed to
rebuild the model: the PaiNN config (cutoff and elements included), units, the format
version and free-form metadata (teacher id, dataset hash, training metrics...). Energy
references and scale/shift are buffers, so they travel with the weights.

``load_student`` also reads the prototype's legacy torch checkpoints (a dict with
``model_state_dict`` or a bare state dict, keys possibly prefixed ``model.``) with
``torch.load(weights_only=True)``: nothing in a user's file is ever unpickled as code.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mlff_distiller.devices import torch_device
from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path
from mlff_distiller.models.forces import ForceField
from mlff_distiller.models.painn import PaiNN, PaiNNConfig
from mlff_distiller.models.presets import preset_config

FORMAT_NAME = "mlff-distiller-student"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3"}
_LEGACY_PREFIXES = ("module.", "model.", "energy_model.")


def save_student(
    model: ForceField, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` and its metadata to ``path`` (safetensors), atomically.

    Args:
        model: the student.
        path: destination file, conventionally ``*.safetensors``.
        metadata: JSON-serialisable free-form metadata (teacher id, dataset hash, ...).
    """
    from safetensors.torch import save_file

    if not isinstance(model, ForceField):
        raise InputError(
            f"save_student expects a ForceField student, got {type(model).__name__}"
        )
    try:
        user_metadata = json.dumps(dict(metadata or {}), sort_keys=True)
    except TypeError as exc:
        raise InputError(f"checkpoint metadata must be JSON-serialisable: {exc}") from None
    header = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "units": json.dumps(UNITS, sort_keys=True),
        "metadata": user_metadata,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.energy_model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def read_checkpoint_header(path: str | os.PathLike) -> dict[str, Any]:
    """Config, units and metadata of a saved student, without building the model."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
            n_values = sum(_prod(fh.get_slice(k).get_shape()) for k in fh.keys())
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(
            f"{path}: not a readable mlff-distiller checkpoint ({exc}); the file may be "
            "truncated or corrupt: re-save or re-train it"
        ) from None
    if raw.get("format") != FORMAT_NAME:
        raise InputError(f"{path}: safetensors file without mlff-distiller metadata")
    return {
        "format_version": int(raw["format_version"]),
        "config": json.loads(raw["config"]),
        "units": json.loads(raw["units"]),
        "metadata": json.loads(raw.get("metadata", "{}")),
        "dtype": raw.get("dtype", "float32"),
        "n_stored_values": n_values,
    }


def load_student(
    path: str | os.PathLike,
    config: str | PaiNNConfig | None = None,
    device: str | torch.device = "cpu",
) -> ForceField:
    """Rebuild a student from a checkpoint.

    Args:
        path: an mlff-distiller ``.safetensors`` checkpoint, or a legacy torch checkpoint.
        config: preset name or config; only used (and then required) for legacy files that
            do not carry their config.
        device: where to put the model.

    The returned model is in eval mode and carries ``checkpoint_metadata``.
    """
    device = torch_device(device)
    path = _existing(path)
    if _is_torch_file(path):
        model = _load_legacy(path, config)
        model.checkpoint_metadata = {"legacy_source": str(path)}
    else:
        from safetensors.torch import load_file

        header = read_checkpoint_header(path)
        if header["format_version"] > FORMAT_VERSION:
            raise InputError(
                f"{path}: checkpoint format version {header['format_version']} is newer than "
                f"this mlff-distiller understands ({FORMAT_VERSION}); upgrade mlff-distiller"
            )
        cfg = PaiNNConfig.from_dict(header["config"])
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise InputError(
                f"{path}: could not read the weights ({exc}); the file may be truncated"
            ) from None
        dtype = getattr(torch, header["dtype"], torch.float32)
        model = ForceField(PaiNN(cfg)).to(dtype)
        _load_state(model, state, path)
        model.checkpoint_metadata = header["metadata"]
    return model.to(device).eval()


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    from mlff_distiller.models import zoo

    shipped = zoo.zoo_path(str(path))
    if shipped is not None:
        return shipped
    hint = (f"; zoo students shipped here: {zoo.available()}" if zoo.available()
            else "; no zoo students are shipped in this installation")
    raise InputError(f"checkpoint {str(path)!r} does not exist or is not a file{hint}")


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _is_torch_file(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    # safetensors: 8-byte little-endian header length, then the JSON header "{..."
    if len(head) == 9 and head[8:9] == b"{":
        return False
    # torch.save writes a zip archive (PK..) or, for old formats, a raw pickle (0x80 ..)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _load_legacy(path: Path, config: str | PaiNNConfig | None) -> ForceField:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            f"{path}: refused to load: the file holds pickled Python objects beyond tensors "
            f"and plain containers, which could run code ({first_line}). Re-save only the "
            "state dict (torch.save({'model_state_dict': model.state_dict()}, path)) from a "
            "trusted environment, or convert it with mlff-distiller there."
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise InputError(
            f"{path}: not a readable torch checkpoint ({exc}); it may be truncated"
        ) from None
    if not isinstance(obj, Mapping):
        raise InputError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    state = obj.get("model_state_dict", obj.get("state_dict", obj))
    tensors_only = isinstance(state, Mapping) and all(
        isinstance(v, torch.Tensor) for v in state.values())
    if not tensors_only:
        raise InputError(
            f"{path}: no state dict found (expected 'model_state_dict' or a dict of tensors)"
        )
    file_config = obj.get("config") if isinstance(obj.get("config"), Mapping) else None
    if file_config is not None:
        cfg = PaiNNConfig.from_dict(dict(file_config))
    elif config is not None:
        cfg = preset_config(config) if isinstance(config, str) else config
    else:
        raise InputError(
            f"{path}: legacy checkpoint without its config; pass the preset or config "
            "(CLI: --preset original|tiny|ultra-tiny; Python: load_student(path, config=...))"
        )
    state = {_strip_prefix(k): v for k, v in state.items()}
    dtype = next(iter(state.values())).dtype if state else torch.float32
    model = ForceField(PaiNN(cfg)).to(dtype if dtype.is_floating_point else torch.float32)
    _load_state(model, state, path)
    return model


def _strip_prefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _LEGACY_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _load_state(model: ForceField, state: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = model.energy_model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s) e.g. {unexpected[:3]}")
        if wrong_shape:
            parts.append(f"shape mismatch {wrong_shape[:3]}")
        raise InputError(
            f"{path}: weights do not match the model config ({'; '.join(parts)}); "
            "check the preset/config (hidden, n_interactions, n_rbf, elements) the file was "
            "trained with"
        )
    model.energy_model.load_state_dict(dict(state), strict=True)
