"""Force analysis of a student against the teacher labels of a dataset split.

:func:`evaluate_student` predicts every structure of the split, computes the metrics of
:mod:`mlff_distiller.evaluation.metrics` overall, per element and per molecule, and writes a
JSON file and one 6-panel figure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlff_distiller import keys
from mlff_distiller.data.graph import collate
from mlff_distiller.errors import InputError
from mlff_distiller.evaluation import metrics as m
from mlff_distiller.fileio import write_json


@dataclass
class Predictions:
    """Student predictions next to teacher labels for one dataset split (float64 numpy)."""

    pred_forces: np.ndarray  # (N, 3) eV/Å
    ref_forces: np.ndarray  # (N, 3) eV/Å
    numbers: np.ndarray  # (N,) atomic numbers
    atom_structure: np.ndarray  # (N,) structure position in this split
    pred_energy: np.ndarray  # (B,) eV
    ref_energy: np.ndarray  # (B,) eV
    n_atoms: np.ndarray  # (B,)
    molecule_ids: np.ndarray  # (B,)


def default_out_dir(student_path: str | os.PathLike, stage: str) -> Path:
    """Where a stage writes its results for a student: ``<dir>/<stem>_<stage>/``."""
    path = Path(student_path)
    return path.parent / f"{path.stem}_{stage}"


def predict_split(model, dataset, batch_size: int = 16, progress=None,
                  device: str | torch.device = "cpu") -> tuple[Predictions, dict]:
    """Run ``model`` (on ``device``) over ``dataset``, skipping structures with elements it
    does not know; ``progress(k)`` is called after each structure.

    Returns the predictions and ``{"n_skipped": ..., "skipped_elements": [...]}``.
    """
    known = set(model.elements)
    pending: list[dict] = []
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Predictions.__dataclass_fields__}
    skipped, skipped_elements = 0, set()
    n_done = 0

    def flush() -> None:
        nonlocal n_done
        batch = collate(pending)
        out = model({k: v.to(device) for k, v in batch.items()}, compute_forces=True)
        out = {k: v.detach().cpu() for k, v in out.items()}
        n = batch[keys.NUM_ATOMS].numpy()
        parts["pred_forces"].append(out[keys.FORCES].double().numpy())
        parts["ref_forces"].append(batch[keys.FORCES].double().numpy())
        parts["numbers"].append(batch[keys.ATOMIC_NUMBERS].numpy())
        parts["atom_structure"].append(np.repeat(np.arange(n_done, n_done + len(n)), n))
        parts["pred_energy"].append(out[keys.ENERGY].double().numpy())
        parts["ref_energy"].append(batch[keys.ENERGY].double().numpy())
        parts["n_atoms"].append(n)
        parts["molecule_ids"].append(batch[keys.MOLECULE_ID].numpy())
        n_done += len(n)
        pending.clear()

    for i in range(len(dataset)):
        item = dataset[i]
        present = set(item[keys.ATOMIC_NUMBERS].tolist())
        if not present <= known:
            skipped += 1
            skipped_elements |= present - known
        else:
            pending.append(item)
            if len(pending) == batch_size:
                flush()
        if progress is not None:
            progress(i + 1)
    if pending:
        flush()
    if n_done == 0:
        raise InputError("no structure of the dataset uses only the student's elements")
    preds = Predictions(**{k: np.concatenate(v) for k, v in parts.items()})
    return preds, {"n_skipped": skipped, "skipped_elements": sorted(skipped_elements)}


def analyse(preds: Predictions, min_force: float = 0.1, min_conformers: int = 3) -> dict:
    """Every metric of one split from :class:`Predictions` (pure; see ``metrics``)."""
    from ase.data import chemical_symbols

    pf, rf = preds.pred_forces, preds.ref_forces
    per_element = m.grouped_force_metrics(pf, rf, preds.numbers)
    atom_molecule = preds.molecule_ids[preds.atom_structure]
    per_molecule_forces = m.grouped_force_metrics(pf, rf, atom_molecule)
    per_molecule = {}
    for mol, fm in per_molecule_forces.items():
        sel = preds.molecule_ids == mol
        per_molecule[mol] = {
            "n_structures": int(sel.sum()),
            "force_rmse": fm["rmse"],
            "force_mae": fm["mae"],
            "energy_mae_per_atom": float(np.mean(
                np.abs(preds.pred_energy[sel] - preds.ref_energy[sel]) / preds.n_atoms[sel])),
        }
    return {
        "forces": m.force_metrics(pf, rf, min_ref_norm=min_force),
        "energy": m.energy_metrics(preds.pred_energy, preds.ref_energy, preds.n_atoms),
        "relative_energy": m.relative_energy_metrics(preds.pred_energy, preds.ref_energy,
                                                     preds.n_atoms, preds.molecule_ids),
        "error_vs_force_magnitude": m.error_by_force_magnitude(pf, rf),
        "per_element": {chemical_symbols[z]: v for z, v in per_element.items()},
        "per_molecule": per_molecule,
        "conformer_ranking": m.conformer_ranking(preds.pred_energy, preds.ref_energy,
                                                 preds.molecule_ids, min_conformers),
    }


def evaluate_student(
    student_path: str | os.PathLike,
    data_path: str | os.PathLike,
    split: str | None = "test",
    *,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    min_force: float = 0.1,
    min_conformers: int = 3,
    device: str = "cpu",
) -> dict:
    """Force analysis of a student on a labeled dataset; writes JSON and a 6-panel PNG.

    Args:
        student_path: student checkpoint.
        data_path: labeled ``.h5`` dataset.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` / ``"all"`` for every structure.
        out_dir: output folder (default ``<student dir>/<stem>_eval``); files are
            ``evaluation_<split>.json`` and ``evaluation_<split>.png``.
        batch_size: structures per forward pass.
        min_force: teacher forces below this (eV/Å) are left out of angular errors.
        min_conformers: conformers a molecule needs for the Spearman ranking.
        device: torch device.

    Returns:
        The result dict (also written as JSON), with ``files`` naming what was written.

    Raises:
        InputError: missing files, a split that does not exist, or a student and dataset
            without a common element.
    """
    from ase.data import chemical_symbols
    from rich.progress import Progress

    from mlff_distiller.data.dataset import LabeledDataset
    from mlff_distiller.evaluation.figures import evaluation_figure
    from mlff_distiller.models.checkpoint import load_student
    from mlff_distiller.models.painn import count_parameters
    from mlff_distiller.models.presets import preset_name

    if not Path(data_path).is_file():
        raise InputError(f"dataset {str(data_path)!r} does not exist; label one with mlffd label")
    split = None if split in (None, "all") else split
    model = load_student(student_path, device=device)
    dtype = next(model.parameters()).dtype
    ds = LabeledDataset(data_path, split=split, cutoff=model.cutoff, dtype=dtype)
    if len(ds) == 0:
        raise InputError(f"{data_path}: split {split!r} holds no structures")
    common = set(ds.elements) & set(model.elements)
    if not common:
        raise InputError(
            f"student {student_path} knows elements "
            f"{[chemical_symbols[z] for z in model.elements]} but dataset {data_path} holds "
            f"{[chemical_symbols[z] for z in ds.elements]}: no element in common; evaluate on "
            "a dataset of the student's chemistry or train a student on this one")
    with Progress(transient=True) as bar:
        task = bar.add_task(f"evaluating on {len(ds)} structures", total=len(ds))
        preds, skipped = predict_split(model, ds, batch_size, device=device,
                                       progress=lambda k: bar.update(task, completed=k))
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    split_name = split or "all"
    result = {
        "model": {
            "path": str(student_path),
            "name": Path(student_path).stem,
            "preset": preset_name(model.config) or "custom",
            "parameters": count_parameters(model),
            "elements": [chemical_symbols[z] for z in model.elements],
            "teacher": meta.get("teacher") or None,
            "dataset_hash": meta.get("dataset_hash") or None,
        },
        "dataset": {
            "path": str(data_path),
            "name": Path(data_path).name,
            "split": split_name,
            "content_hash": ds.content_hash,
            "teacher": _text(ds.metadata.get("teacher")),
            "teacher_version": _text(ds.metadata.get("teacher_version")),
            "n_structures": int(len(preds.n_atoms)),
            "n_atoms": int(len(preds.numbers)),
            "elements": [chemical_symbols[z] for z in ds.elements],
            **skipped,
        },
        "settings": {"min_force_for_angles": min_force, "min_conformers": min_conformers},
        **analyse(preds, min_force, min_conformers),
    }
    if meta.get("dataset_hash") and meta["dataset_hash"] != ds.content_hash:
        result["dataset"]["note"] = "not the dataset the student was trained on"
    out = Path(out_dir) if out_dir is not None else default_out_dir(student_path, "eval")
    png = out / f"evaluation_{split_name}.png"
    evaluation_figure(preds, result, png)
    result["files"] = {"json": str(out / f"evaluation_{split_name}.json"), "figure": str(png)}
    result = m.json_ready(result)
    write_json(result["files"]["json"], result)
    return result


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value.get("name") or value)
    return str(value)
