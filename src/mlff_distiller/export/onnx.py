"""ONNX export with forces, and the fix for onnxruntime's multi-thread scatter race.

The traced force program (:mod:`export.trace`) goes through the dynamo ONNX exporter
(``optimize=False``: onnxscript's optimiser changed results by ~1e-4 here). Backward passes
of gathers become ``ScatterND(reduction="add")`` with duplicate indices, which onnxruntime's
CPU kernel (1.31) parallelises without atomics: with more than one intra-op thread forces
come out wrong at random (onnxruntime issues 18048, 23396). :func:`race_free_scatters`
rewrites each such node into ``ScatterElements(reduction="add", axis=0)`` on flattened
rows, which onnxruntime runs serially, so sessions may use any number of threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mlff_distiller.errors import InputError
from mlff_distiller.export.core import INPUT_NAMES, OUTPUT_NAMES, LoadedExport
from mlff_distiller.export.trace import example_args, trace_student
from mlff_distiller.fileio import atomic_path
from mlff_distiller.models.forces import ForceField

METADATA_KEY = "mlff_distiller"
_CONST = {"zero_minus_one": [0, -1], "minus_one": [-1], "one": [1], "two": [2]}


def to_onnx_model(student: ForceField, race_free: bool = True):
    """The student's (energy, forces, stress) as an ``onnx.ModelProto``."""
    import torch

    program = trace_student(student)
    onnx_program = torch.onnx.export(
        program,
        example_args(student),
        dynamo=True,
        optimize=False,
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        verbose=False,
    )
    model = onnx_program.model_proto
    if race_free:
        model, _ = race_free_scatters(model)
    return model


def race_free_scatters(model):
    """Rewrite ``ScatterND(add)`` with (K, 1) indices into ``ScatterElements(add)``.

    data (N, ...) and updates (K, ...) are viewed as (N, D) and (K, D), the indices (K, 1)
    broadcast to (K, D); the result is reshaped back. Returns (model, number rewritten).
    Raises if a ScatterND(add) has indices whose last dimension is not provably 1.
    """
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    inferred = shape_inference.infer_shapes(model)
    infos = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.input]}
    prefix = "race_free_"
    model.graph.initializer.extend(
        numpy_helper.from_array(np.array(v, dtype=np.int64), prefix + k) for k, v in _CONST.items()
    )
    nodes, count = [], 0
    for node in model.graph.node:
        reduction = {a.name: a.s for a in node.attribute}.get("reduction", b"none")
        if node.op_type != "ScatterND" or reduction != b"add":
            nodes.append(node)
            continue
        data, indices, updates = node.input
        dims = infos[indices].type.tensor_type.shape.dim if indices in infos else []
        if len(dims) != 2 or dims[-1].dim_value != 1:
            raise RuntimeError(f"ScatterND {node.name}: indices {indices} are not (K, 1)")
        p = f"{prefix}{count}_"
        count += 1
        nodes += [
            helper.make_node("Shape", [data], [p + "shape"]),
            helper.make_node("Reshape", [data, prefix + "zero_minus_one"], [p + "data"]),
            helper.make_node("Shape", [p + "data"], [p + "data_shape"]),
            helper.make_node(
                "Slice", [p + "data_shape", prefix + "one", prefix + "two"], [p + "d"]
            ),
            helper.make_node("Concat", [prefix + "minus_one", p + "d"], [p + "rows"], axis=0),
            helper.make_node("Reshape", [updates, p + "rows"], [p + "updates"]),
            helper.make_node("Shape", [p + "updates"], [p + "updates_shape"]),
            helper.make_node("Expand", [indices, p + "updates_shape"], [p + "indices"]),
            helper.make_node(
                "ScatterElements", [p + "data", p + "indices", p + "updates"], [p + "out"],
                axis=0, reduction="add",
            ),
            helper.make_node("Reshape", [p + "out", p + "shape"], list(node.output)),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model, count


def save_onnx(
    student: ForceField, path: str | os.PathLike, metadata: dict[str, Any], race_free: bool = True
) -> Path:
    """Write the student as ONNX (forces included) with its metadata in ``metadata_props``."""
    import onnx

    model = to_onnx_model(student, race_free=race_free)
    metadata = dict(metadata, race_free_scatter=race_free)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)


def onnx_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own error types
        raise InputError(f"{path}: not a readable ONNX model ({exc})") from None


def load_onnx(path: str | os.PathLike, threads: int = 1) -> LoadedExport:
    """Load a file written by :func:`save_onnx`.

    Models exported without the race-free rewrite are pinned to one intra-op thread.
    """
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if METADATA_KEY not in props:
        raise InputError(f"{path}: ONNX model without mlff-distiller metadata")
    metadata = json.loads(props[METADATA_KEY])
    if not metadata.get("race_free_scatter", False):
        threads = 1
    session = onnx_session(path, threads)
    names = [i.name for i in session.get_inputs()]

    def run(*args):
        feeds = {name: a.detach().cpu().numpy() for name, a in zip(names, args, strict=True)}
        return session.run(None, feeds)

    metadata["threads"] = int(threads)
    return LoadedExport(run=run, metadata=metadata, needs_edges=True)


__all__ = ["load_onnx", "onnx_session", "race_free_scatters", "save_onnx", "to_onnx_model"]
