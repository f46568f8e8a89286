"""Distil a teacher's labels into a PaiNN student: ``train_student`` is the one entry point.

Order of a run: load splits -> build the student on the training elements -> fit energy
references and loss scales on the training split -> AdamW with warm-up + cosine (or
plateau), gradient clipping, EMA -> validate the EMA weights, keep the best, stop early on
validation force MAE. Files in ``out_dir``: ``best.safetensors`` and ``last.safetensors``
(EMA weights, foundation checkpoint format), ``training_state.safetensors`` (resume),
``log.csv`` / ``log.json`` (per validation), ``metrics.json`` (final summary).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from mlff_distiller import keys
from mlff_distiller.errors import InputError
from mlff_distiller.fileio import write_json
from mlff_distiller.models.checkpoint import save_student
from mlff_distiller.models.painn import PaiNNConfig, count_parameters
from mlff_distiller.models.presets import build_student, preset_config, preset_name
from mlff_distiller.training import distributed as dd
from mlff_distiller.training.config import TrainConfig
from mlff_distiller.training.data import GraphSet, check_elements, load_splits
from mlff_distiller.training.logger import RunLogger
from mlff_distiller.training.loss import (
    LossScales,
    LossWeights,
    batch_errors,
    combine,
    loss_terms,
    student_hessian_rows,
    summarize_errors,
)
from mlff_distiller.training.normalization import (
    FORCE_OUTLIER_FACTOR,
    apply_normalization,
    fit_element_energies,
    fit_scales,
    force_outliers,
)
from mlff_distiller.training.optim import EMA, LRSchedule
from mlff_distiller.training.state import (
    STATE_FILE,
    check_resume_compatible,
    load_training_state,
    save_training_state,
)


class TrainingDiverged(InputError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


def train_student(
    data_path: str | os.PathLike,
    preset_or_config: str | PaiNNConfig = "original",
    train_config: TrainConfig | None = None,
    out_dir: str | os.PathLike = "runs/student",
    resume: bool = False,
) -> dict[str, Any]:
    """Train a student on a labeled HDF5 dataset.

    Args:
        data_path: dataset written by :func:`mlff_distiller.data.dataset.write_dataset`.
        preset_or_config: ``original`` / ``tiny`` / ``ultra-tiny`` or a :class:`PaiNNConfig`
            (its elements are replaced by the training split's).
        train_config: hyperparameters (defaults: ``TrainConfig()``).
        out_dir: run directory (checkpoints, logs, state).
        resume: continue the run in ``out_dir`` from its last training state.

    Returns:
        ``{"best_checkpoint", "last_checkpoint", "log_csv", "log_json", "metrics_json",
        "metrics": {...}}`` (paths as strings).
    """
    config = train_config or TrainConfig()
    info = dd.setup_distributed(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    model_config = (preset_config(preset_or_config) if isinstance(preset_or_config, str)
                    else preset_or_config)
    cutoff = config.cutoff or model_config.cutoff
    train, val, data_info = load_splits(data_path, cutoff, dtype,
                                        config.val_fraction_if_missing, config.seed)
    return fit(train, val, model_config, config, out_dir, resume, data_info, info)


def fit(
    train: GraphSet,
    val: GraphSet,
    model_config: PaiNNConfig,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    data_info: dict | None = None,
    info: dd.DistInfo | None = None,
) -> dict[str, Any]:
    """Train on in-memory splits (what :func:`train_student` calls after loading)."""
    info = info or dd.DistInfo()
    data_info = dict(data_info or {"dataset_hash": train.content_hash})
    out = Path(out_dir)
    if len(train) == 0:
        raise InputError("no training structures: the training split is empty")
    if len(val) == 0:
        raise InputError("no validation structures: the validation split is empty")
    if min(len(train), config.batch_size) < info.world:
        raise InputError(f"{info.world} processes need at least {info.world} training "
                         f"structures per batch (training split {len(train)}, batch_size "
                         f"{config.batch_size}); use fewer processes or a larger batch")
    check_elements(train, val, data_info.get("dataset", "in memory"))
    if not resume and (out / STATE_FILE).exists():
        raise InputError(f"{out} already holds a training run; pass --resume to continue it "
                         "or choose another out_dir")
    check_labels_finite(train)
    check_labels_finite(val)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    cutoff = config.cutoff or model_config.cutoff
    model = build_student(model_config, elements=train.elements, cutoff=cutoff,
                          seed=config.seed).to(dtype)
    element_energies = fit_element_energies(train.graphs, train.elements)
    outliers = force_outliers(train.graphs)
    outlier_names = [_structure_name(train.graphs[i], i) for i in outliers]
    if outliers and info.is_main:
        _warn_force_outliers(train, outliers, outlier_names, data_info.get("dataset", "in memory"))
    scales = fit_scales(train.graphs, train.elements, element_energies, exclude=outliers)
    apply_normalization(model, element_energies, scales.energy)
    model = model.to(info.device).train()
    ema_model = copy.deepcopy(model).eval()
    for p in ema_model.parameters():
        p.requires_grad_(False)
    ema = EMA(model, ema_model, config.ema_decay)
    weights = LossWeights(config.energy_weight, config.force_weight, config.stress_weight,
                          config.hessian_weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(train) // config.batch_size)
    total_steps = config.max_steps or steps_per_epoch * config.max_epochs
    schedule = LRSchedule.from_config(config, total_steps)
    run = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best_val_force_mae": float("inf"),
           "best_step": -1, "bad_validations": 0, "train_sums": {}, "elapsed_s": 0.0,
           "history": [], "recent_losses": [], "n_skipped": 0, "consecutive_skips": 0,
           "skipped_batches_last": []}
    base_info = {"dataset_hash": data_info.get("dataset_hash", ""),
                 "train_config": config.to_dict(), "model_config": model.config.to_dict(),
                 "scales": scales.__dict__}
    if resume:
        saved = load_training_state(out, model, ema_model, optimizer)
        check_resume_compatible(saved, base_info["dataset_hash"], config.to_dict(),
                                model.config.to_dict())
        schedule.load(saved["schedule"])
        run.update(saved["run"])
    logger = RunLogger(out, info.is_main, config, total_steps, resume=resume)
    teacher = data_info.get("dataset_metadata", {}).get("teacher", "")
    meta = {"dataset_hash": base_info["dataset_hash"], "teacher": teacher,
            "dataset": data_info.get("dataset", ""), "preset": preset_name(model.config),
            "train_config": config.to_dict(), "scales": scales.__dict__,
            "validation_source": data_info.get("validation_source", "val split")}

    def checkpoint(kind: str, metrics: dict) -> None:
        if info.is_main:
            save_student(ema_model, out / f"{kind}.safetensors",
                         metadata=dict(meta, metrics=metrics, step=run["step"],
                                       epoch=run["epoch"], checkpoint=kind))

    def save_state() -> None:
        if info.is_main:
            checkpoint("last", {"history_tail": run["history"][-1:]})
            save_training_state(out, model, ema_model, optimizer,
                                dict(base_info, run=run, schedule=schedule.state()))
        dd.barrier(info)

    def validate() -> dict[str, float]:
        metrics = summarize_errors(evaluate(ema_model, val, 2 * config.batch_size, info))
        entry = {"epoch": run["epoch"], "step": run["step"],
                 "lr": run.get("lr", schedule.lr(run["step"])),
                 "elapsed_s": round(run["elapsed_s"], 3), "skipped_batches": run["n_skipped"],
                 **{f"train_{k}": v for k, v in _train_metrics(run).items()},
                 **{f"val_{k}": v for k, v in metrics.items()}}
        run["history"].append(entry)
        run["train_sums"] = {}
        schedule.observe(metrics["force_mae"])
        if metrics["force_mae"] < run["best_val_force_mae"]:
            run.update(best_val_force_mae=metrics["force_mae"], best_step=run["step"],
                       bad_validations=0)
            checkpoint("best", entry)
        else:
            run["bad_validations"] += 1
        logger.log(run["history"])
        return metrics

    clock = time.process_time if config.budget_clock == "cpu" else time.perf_counter
    start = clock() - run["elapsed_s"]
    # a resumed run that had already stopped (and whose limits were not raised) takes no step
    stop_reason = _already_stopped(run, config)
    logger.start(run["step"])
    while stop_reason is None and run["epoch"] < config.max_epochs and not (
            config.max_steps and run["step"] >= config.max_steps):
        order = _epoch_order(len(train), config.seed, run["epoch"])
        batches = [order[i:i + config.batch_size] for i in range(0, len(order),
                                                                 config.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < info.world:  # every process needs one
            batches[-2:] = [batches[-2] + batches[-1]]
        while run["batch_in_epoch"] < len(batches):
            global_idx = batches[run["batch_in_epoch"]]
            batch = train.batch(global_idx[info.rank::info.world], info.device)
            lr = schedule.lr(run["step"], run["elapsed_s"] / config.time_budget_s
                             if config.time_budget_s else None)
            run["lr"] = lr
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, errors = _step_loss(model, batch, scales, weights, info)
            if not torch.isfinite(loss):
                raise _diverged(f"loss became {loss.item()}", run, train, global_idx, out, lr)
            batch_loss = float(dd.all_reduce_sum(loss.detach().clone(), info))  # global batch
            if _is_spike(batch_loss, run, config.loss_spike_factor):
                _record_skip(run, batch_loss, [_structure_name(train.graphs[i], i)
                                               for i in global_idx])
                if run["consecutive_skips"] >= MAX_CONSECUTIVE_SKIPS:
                    raise _diverged(
                        f"{MAX_CONSECUTIVE_SKIPS} batches in a row had a loss above "
                        f"loss_spike_factor={config.loss_spike_factor:g} x the median of "
                        f"recent losses ({_recent_median(run):.4g})", run, train, global_idx,
                        out, lr)
                run["batch_in_epoch"] += 1
                run["elapsed_s"] = clock() - start
                continue
            run["consecutive_skips"] = 0
            run["recent_losses"] = (run["recent_losses"] + [batch_loss])[-RECENT_LOSSES:]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            dd.all_reduce_gradients(model, info)
            norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), config.grad_clip if config.grad_clip > 0 else float("inf"))
            if not torch.isfinite(norm):
                raise _diverged(f"gradient norm became {norm.item()}", run, train, global_idx,
                                out, lr)
            optimizer.step()
            ema.update(run["step"])
            run["step"] += 1
            run["batch_in_epoch"] += 1
            for k, v in errors.items():
                run["train_sums"][k] = run["train_sums"].get(k, 0.0) + float(v)
            local_loss = float(loss.detach())
            run["train_sums"]["loss"] = run["train_sums"].get("loss", 0.0) + local_loss
            run["train_sums"]["n_batches"] = run["train_sums"].get("n_batches", 0.0) + 1
            run["elapsed_s"] = clock() - start
            logger.advance(run["step"], local_loss)
            if config.val_every_steps and run["step"] % config.val_every_steps == 0:
                validate()
            if config.checkpoint_every_steps and run["step"] % config.checkpoint_every_steps == 0:
                save_state()
            if config.max_steps and run["step"] >= config.max_steps:
                stop_reason = "max_steps"
                break
            over_budget = bool(config.time_budget_s) and run["elapsed_s"] >= config.time_budget_s
            if dd.broadcast_flag(over_budget, info):
                stop_reason = "time_budget"
                break
        else:
            run["epoch"] += 1
            run["batch_in_epoch"] = 0
            if not config.val_every_steps:
                validate()
            if (config.early_stopping_patience
                    and run["bad_validations"] >= config.early_stopping_patience):
                stop_reason = "early_stopping"
                break
            continue
        break
    stop_reason = stop_reason or ("max_steps" if config.max_steps
                                  and run["step"] >= config.max_steps else "max_epochs")
    if not run["history"] or run["history"][-1]["step"] != run["step"]:
        validate()
    save_state()
    logger.close()
    final = run["history"][-1]
    summary = {
        "stop_reason": stop_reason, "steps": run["step"], "epochs": run["epoch"],
        "best_step": run["best_step"], "best_val_force_mae": run["best_val_force_mae"],
        "final": final, "train_time_s": run["elapsed_s"], "budget_clock": config.budget_clock,
        "structures_per_s": run["step"] * config.batch_size / max(run["elapsed_s"], 1e-9),
        "parameters": count_parameters(model), "n_train": len(train), "n_val": len(val),
        "element_energies": dict(zip(map(int, train.elements), element_energies.tolist(),
                                     strict=True)),
        "scales": scales.__dict__, "validation_source": meta["validation_source"],
        "scale_outliers": outlier_names,
        "skipped_batches": run["n_skipped"], "skipped_batches_last": run["skipped_batches_last"],
    }
    paths = {"best_checkpoint": str(out / "best.safetensors"),
             "last_checkpoint": str(out / "last.safetensors"),
             "log_csv": str(logger.csv_path), "log_json": str(logger.json_path),
             "metrics_json": str(out / "metrics.json")}
    if info.is_main:
        write_json(out / "metrics.json", dict(summary, **paths))
    return dict(paths, metrics=summary)


def check_labels_finite(data: GraphSet) -> None:
    """Non-finite teacher labels are bad input, caught before training."""
    bad = [_structure_name(g, i) for i, g in enumerate(data.graphs)
           if not (torch.isfinite(g[keys.ENERGY]).all() and torch.isfinite(g[keys.FORCES]).all())]
    if bad:
        raise InputError(
            f"{data.name} split: non-finite energy or forces in structure(s) {bad[:20]}; "
            "relabel them or drop them from the dataset"
        )


def _warn_force_outliers(train: GraphSet, outliers: list[int], names: list[int],
                         dataset: str) -> None:
    """Say which training structures (positions ``outliers``, dataset structures ``names``)
    are left out of the loss scales, and how to drop them."""
    from rich.console import Console

    worst = max(float(train.graphs[i][keys.FORCES].abs().max()) for i in outliers)
    Console(stderr=True).print(
        f"[yellow]warning[/]: {len(names)} training structure(s) of {dataset} have RMS forces "
        f"over {FORCE_OUTLIER_FACTOR:g}x the median structure's (dataset structures "
        f"{names[:20]}, largest component {worst:.4g} eV/Å): left out of the loss scales; "
        "they are still trained on. If they are wrong labels, drop them with `mlffd data "
        "filter DATA.h5 --out CLEAN.h5 --max-force X`", highlight=False)


def _structure_name(graph: dict, position: int) -> int:
    if keys.STRUCTURE_INDEX in graph:
        return int(graph[keys.STRUCTURE_INDEX][0])
    return position


def _diverged(what: str, run: dict, train: GraphSet, indices: list[int], out: Path,
              lr: float) -> TrainingDiverged:
    rows = sorted(_structure_name(train.graphs[i], i) for i in indices)
    return TrainingDiverged(
        f"{what} at epoch {run['epoch']}, step {run['step']}, batch {run['batch_in_epoch']} "
        f"of the epoch (dataset structures {rows}); training stopped and the last good "
        f"checkpoint in {out} is kept (resume with --resume after fixing). Check those "
        f"structures (overlapping atoms, wrong labels) or lower lr (now {lr:.3g})"
    )


RECENT_LOSSES = 100  # accepted batch losses whose median is the spike guard's reference
SPIKE_GUARD_AFTER_STEPS = 20  # accepted steps before the guard watches
MAX_CONSECUTIVE_SKIPS = 20  # more spikes in a row than this is divergence, not a spike
KEEP_SKIPPED = 50  # skipped batches listed in the training state and metrics.json


def _is_spike(batch_loss: float, run: dict, factor: float) -> bool:
    """A loss far above the median of recent accepted losses: one batch the current weights
    get wildly wrong, or a structure whose labels are far off (listed in the run's state).

    Seen in long runs (twice in a 4800 CPU-s ``original`` run: an epoch's mean loss of 1e7
    against 0.3), the spike's clipped gradient would still move every weight and fill
    AdamW's moments; skipping its step keeps the run on course.
    """
    return (factor > 0 and len(run["recent_losses"]) >= SPIKE_GUARD_AFTER_STEPS
            and batch_loss > factor * _recent_median(run))


def _recent_median(run: dict) -> float:
    return statistics.median(run["recent_losses"])


def _record_skip(run: dict, batch_loss: float, structures: list[int]) -> None:
    run["n_skipped"] += 1
    run["consecutive_skips"] += 1
    run["skipped_batches_last"] = (run["skipped_batches_last"] + [{
        "epoch": run["epoch"], "step": run["step"], "batch": run["batch_in_epoch"],
        "loss": batch_loss, "recent_median": _recent_median(run),
        "structures": sorted(structures),
    }])[-KEEP_SKIPPED:]


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def _step_loss(model, batch: dict, scales: LossScales, weights: LossWeights,
               info: dd.DistInfo) -> tuple[torch.Tensor, dict]:
    """Loss of this process's share of the global batch, normalised by global counts."""
    positions = batch[keys.POSITIONS].detach().requires_grad_(True)
    batch = dict(batch, **{keys.POSITIONS: positions})
    periodic = bool(batch[keys.PBC].all(dim=1).any()) and keys.STRESS in batch
    prediction = model(batch, compute_forces=True,
                       compute_stress=periodic and weights.stress > 0)
    rows = None
    if weights.hessian > 0 and keys.HESSIAN_ROW_INDEX in batch:
        rows = student_hessian_rows(prediction[keys.FORCES], positions,
                                    batch[keys.HESSIAN_ROW_INDEX], batch[keys.BATCH])
    terms = loss_terms(prediction, batch, scales, weights, rows)
    counts = {name: dd.all_reduce_sum(count.detach().clone(), info)
              for name, (_, count) in terms.items()}
    loss = combine(terms, weights, counts)
    return loss, {k: float(v) for k, v in batch_errors(prediction, batch).items()}


def evaluate(model, data: GraphSet, batch_size: int, info: dd.DistInfo) -> dict[str, float]:
    """Error sums of ``model`` on ``data`` (this process's shard, all-reduced)."""
    totals: dict[str, torch.Tensor] = {}
    indices = list(range(info.rank, len(data), info.world))
    for start in range(0, len(indices), batch_size):
        batch = data.batch(indices[start:start + batch_size], info.device)
        errors = {}
        with torch.enable_grad():
            if keys.HESSIAN_ROWS in batch:
                errors = _hessian_errors(model, batch)
            prediction = model(batch, compute_forces=True)
        errors.update(batch_errors(prediction, batch))
        for k, v in errors.items():
            totals[k] = totals.get(k, torch.zeros((), dtype=torch.float64)) + v.cpu()
    names = ["n_structures", "n_force_components", "energy_abs_per_atom",
             "energy_sq_per_atom", "force_abs", "force_sq", "hessian_sq", "n_hessian"]
    flat = torch.stack([totals.get(k, torch.zeros((), dtype=torch.float64)) for k in names])
    flat = dd.all_reduce_sum(flat.to(info.device), info).cpu()
    return dict(zip(names, flat.tolist(), strict=True))


def _hessian_errors(model, batch: dict) -> dict[str, torch.Tensor]:
    """Sum of squared Hessian-row errors (eV/Å^2)^2 over each row's own structure."""
    positions = batch[keys.POSITIONS].detach().requires_grad_(True)
    graph = dict(batch, **{keys.POSITIONS: positions})
    model.train()  # create_graph for the double backward; the model has no dropout/norm
    try:
        forces = model(graph, compute_forces=True)[keys.FORCES]
        rows = student_hessian_rows(forces, positions, batch[keys.HESSIAN_ROW_INDEX],
                                    batch[keys.BATCH]).detach()
    finally:
        model.eval()
    row_structure = batch[keys.BATCH][torch.div(batch[keys.HESSIAN_ROW_INDEX], 3,
                                                rounding_mode="floor")]
    own = batch[keys.BATCH].repeat_interleave(3).unsqueeze(0) == row_structure.unsqueeze(1)
    err = (rows.double() - batch[keys.HESSIAN_ROWS].double()) * own
    return {"hessian_sq": (err**2).sum(), "n_hessian": own.sum().double()}


def _already_stopped(run: dict, config: TrainConfig) -> str | None:
    """The reason a (resumed) run's state says training is over, or None: its time budget
    spent, or early stopping's patience run out at an epoch's end (where the loop checks it;
    a state saved mid-epoch goes on to that end, as the uninterrupted run did). Checked
    before the first step, so resuming a finished run (``mlffd distill`` remaking a deleted
    checkpoint) does not train one more step; raising ``time_budget_s`` (free on resume)
    lets it go on."""
    if config.time_budget_s and run["elapsed_s"] >= config.time_budget_s:
        return "time_budget"
    if (config.early_stopping_patience and run["batch_in_epoch"] == 0
            and run["bad_validations"] >= config.early_stopping_patience):
        return "early_stopping"
    return None


def _train_metrics(run: dict) -> dict[str, float]:
    sums = run["train_sums"]
    if not sums:
        return {}
    out = summarize_errors(sums)
    out["loss"] = sums["loss"] / max(sums["n_batches"], 1)
    return out
