"""Quantized students, and an honest account of what each mode does to forces and MD.

Modes:
  ``fp16`` / ``bf16``  the whole student cast (safetensors, loads with ``load_student``);
                       forces stay autograd gradients of the low-precision energy.
  ``int8-weight``      Linear weights stored as int8 with a float32 scale per output row
                       (:func:`save_int8_student` / :func:`load_int8_student`); computation is
                       float32 with the dequantised weights, so forces stay exact gradients.
  ``int8-onnx``        onnxruntime ``quantize_dynamic`` of the ONNX force export: the forward
                       *and* the traced backward MatMuls are quantised independently, so its
                       forces are no longer the gradient of its energy.

Not offered: PyTorch dynamic INT8 (``torch.ao`` / torchao dynamic-activation configs) cuts the
autograd graph, so it cannot give forces at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlff_distiller.errors import InputError
from mlff_distiller.export.core import LoadedExport
from mlff_distiller.fileio import atomic_path
from mlff_distiller.models.checkpoint import load_student, read_checkpoint_header, save_student
from mlff_distiller.models.forces import ForceField
from mlff_distiller.models.painn import PaiNN, PaiNNConfig

MODES = ("fp16", "bf16", "int8-weight", "int8-onnx")
INT8_FORMAT = "mlff-distiller-student-int8-weight"
SCALE_SUFFIX = ".int8_scale"


def check_mode(mode: str) -> str:
    key = mode.strip().lower()
    if key not in MODES:
        raise InputError(f"unknown quantization mode {mode!r}; choose one of {list(MODES)}")
    return key


def default_out_path(checkpoint: str | os.PathLike, mode: str) -> Path:
    """``student.safetensors`` -> ``student.int8-weight.safetensors`` (``.onnx`` for ONNX)."""
    path = Path(checkpoint)
    stem = path.name.removesuffix(".safetensors")
    suffix = ".onnx" if mode == "int8-onnx" else ".safetensors"
    return path.with_name(f"{stem}.{mode}{suffix}")


def write_quantized(student: ForceField, mode: str, out_path: str | os.PathLike) -> Path:
    """Write ``student`` (float32) quantized by ``mode`` to ``out_path``."""
    mode = check_mode(mode)
    meta = dict(getattr(student, "checkpoint_metadata", {}) or {}, quantization=mode)
    if mode in ("fp16", "bf16"):
        dtype = torch.float16 if mode == "fp16" else torch.bfloat16
        low = ForceField(PaiNN(student.config)).to(dtype)
        low.energy_model.load_state_dict(student.energy_model.state_dict())
        return save_student(low, out_path, metadata=meta)
    if mode == "int8-weight":
        return save_int8_student(student, out_path, metadata=meta)
    return _write_int8_onnx(student, out_path)


def load_quantized(path: str | os.PathLike, mode: str) -> ForceField | LoadedExport:
    """The matched loader of :func:`write_quantized`."""
    mode = check_mode(mode)
    if mode in ("fp16", "bf16"):
        return load_student(path)
    if mode == "int8-weight":
        return load_int8_student(path)
    from mlff_distiller.export.onnx import load_onnx

    return load_onnx(path)


def save_int8_student(
    student: ForceField, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> Path:
    """Linear weights as int8 (symmetric, per output row) + float32 scales; the rest float32."""
    from safetensors.torch import save_file

    linear_weights = {
        f"{name}.weight" for name, m in student.energy_model.named_modules()
        if isinstance(m, nn.Linear)
    }
    tensors = {}
    for name, value in student.energy_model.state_dict().items():
        value = value.detach().float().cpu().contiguous()
        if name in linear_weights:
            scale = value.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
            tensors[name] = torch.round(value / scale).clamp(-127, 127).to(torch.int8)
            tensors[name + SCALE_SUFFIX] = scale.squeeze(1)
        else:
            tensors[name] = value
    header = {
        "format": INT8_FORMAT,
        "config": json.dumps(student.config.to_dict(), sort_keys=True),
        "metadata": json.dumps(dict(metadata or {}), sort_keys=True, default=str),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def load_int8_student(path: str | os.PathLike) -> ForceField:
    """Load :func:`save_int8_student` output as a float32 student (weights dequantised)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata() or {}
        if header.get("format") != INT8_FORMAT:
            raise InputError(f"{path}: not an int8-weight student (format {header.get('format')})")
        raw = {k: fh.get_tensor(k) for k in fh.keys()}
    state = {}
    for name, value in raw.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = raw.get(name + SCALE_SUFFIX)
        state[name] = value.float() * scale.unsqueeze(1) if scale is not None else value
    model = ForceField(PaiNN(PaiNNConfig.from_dict(json.loads(header["config"]))))
    model.energy_model.load_state_dict(state)
    model.checkpoint_metadata = json.loads(header.get("metadata", "{}"))
    return model.eval()


def _write_int8_onnx(student: ForceField, out_path: str | os.PathLike) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mlff_distiller.export.core import export_metadata
    from mlff_distiller.export.onnx import METADATA_KEY, save_onnx

    out_path = Path(out_path)
    with atomic_path(out_path.with_name(out_path.name + ".fp32.onnx")) as fp32:
        save_onnx(student, fp32, export_metadata(student, "onnx"))
        with atomic_path(out_path) as tmp:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
            model = onnx.load(str(tmp))
            props = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
            meta = json.loads(props[METADATA_KEY])
            meta.update(format="onnx", quantization="int8-onnx")
            del model.metadata_props[:]
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(meta)
            onnx.save(model, str(tmp))
    return out_path


def checkpoint_size(path: str | os.PathLike) -> int:
    """Bytes of a checkpoint on disk (validates that it is a student checkpoint)."""
    read_checkpoint_header(path)
    return Path(path).stat().st_size


__all__ = [
    "MODES",
    "default_out_path",
    "load_int8_student",
    "load_quantized",
    "save_int8_student",
    "write_quantized",
]
