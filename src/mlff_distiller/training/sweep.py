"""Train a grid of student sizes and tabulate accuracy against speed (the Pareto front).

``sweep_students`` trains every (hidden, interactions, n_rbf) combination on one dataset,
measures each best checkpoint's validation force MAE and its CPU latency (energy + forces
of a fixed validation batch), and writes ``sweep.md``, ``sweep.json`` and ``sweep.png``.
A finished grid point (its ``metrics.json`` exists) is reused, an interrupted one resumed.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mlff_distiller.errors import InputError
from mlff_distiller.fileio import atomic_path, write_json, write_text
from mlff_distiller.models.checkpoint import load_student
from mlff_distiller.models.painn import PaiNNConfig, count_parameters
from mlff_distiller.training.config import TrainConfig
from mlff_distiller.training.data import GraphSet, load_splits
from mlff_distiller.training.state import STATE_FILE
from mlff_distiller.training.trainer import fit


def sweep_students(
    data_path: str | os.PathLike,
    hidden: Sequence[int] = (32, 64, 128),
    interactions: Sequence[int] = (2, 3),
    rbf: Sequence[int] = (10, 20),
    train_config: TrainConfig | None = None,
    out_dir: str | os.PathLike = "runs/sweep",
    latency_structures: int = 16,
) -> dict[str, Any]:
    """Train the grid and write the Pareto table and figure.

    Args:
        data_path: labeled dataset.
        hidden, interactions, rbf: grid values (features, message blocks, radial functions).
        train_config: training hyperparameters shared by every grid point.
        out_dir: one sub-directory per grid point plus ``sweep.{md,json,png}``.
        latency_structures: validation structures in the timed batch.

    Returns:
        ``{"table_md", "table_json", "figure", "points": [...]}``; each point has hidden,
        n_interactions, n_rbf, parameters, val_force_mae (eV/Å), val_energy_mae_per_atom
        (eV/atom), latency_ms (per batch), pareto (bool), checkpoint.
    """
    config = train_config or TrainConfig()
    grid = list(itertools.product(_positive(hidden, "hidden"),
                                  _positive(interactions, "interactions"),
                                  _positive(rbf, "rbf")))
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    cutoff = config.cutoff or PaiNNConfig().cutoff
    train, val, info = load_splits(data_path, cutoff, dtype, config.val_fraction_if_missing,
                                   config.seed)
    out = Path(out_dir)
    points = []
    for h, n_int, n_rbf in grid:
        model_config = PaiNNConfig(hidden=h, n_interactions=n_int, n_rbf=n_rbf, cutoff=cutoff)
        run_dir = out / f"h{h}_i{n_int}_r{n_rbf}"
        done = read_json_if_exists(run_dir / "metrics.json")
        if done is None:
            resume = (run_dir / STATE_FILE).exists()
            done = fit(train, val, model_config, config, run_dir, resume, info)["metrics"]
            done = read_json_if_exists(run_dir / "metrics.json") or done
        best = load_student(run_dir / "best.safetensors")
        entry = done.get("final", {})
        points.append({
            "hidden": h, "n_interactions": n_int, "n_rbf": n_rbf,
            "parameters": count_parameters(best),
            "val_force_mae": done["best_val_force_mae"],
            "val_energy_mae_per_atom": entry.get("val_energy_mae_per_atom"),
            "latency_ms": measure_latency_ms(best, val, latency_structures),
            "checkpoint": str(run_dir / "best.safetensors"),
        })
    mark_pareto(points)
    table = pareto_markdown(points, latency_structures)
    write_text(out / "sweep.md", table)
    write_json(out / "sweep.json", {"dataset": str(data_path), "train_config": config.to_dict(),
                                    "latency_batch_structures": latency_structures,
                                    "points": points})
    figure = plot_pareto(points, out / "sweep.png")
    return {"table_md": str(out / "sweep.md"), "table_json": str(out / "sweep.json"),
            "figure": str(figure), "points": points}


def measure_latency_ms(model, data: GraphSet, n_structures: int, repeats: int = 5) -> float:
    """Median wall time (ms) of energy + forces for the first ``n_structures`` of ``data``."""
    batch = data.batch(list(range(min(n_structures, len(data)))))
    dtype = next(model.parameters()).dtype
    batch = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model(batch, compute_forces=True)
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])  # first call warms up
    return 1000 * times[len(times) // 2]


def mark_pareto(points: list[dict]) -> None:
    """Set ``pareto`` on points no other point beats on both force MAE and latency."""
    for p in points:
        p["pareto"] = not any(
            q is not p and q["val_force_mae"] <= p["val_force_mae"]
            and q["latency_ms"] <= p["latency_ms"]
            and (q["val_force_mae"] < p["val_force_mae"] or q["latency_ms"] < p["latency_ms"])
            for q in points
        )


def pareto_markdown(points: list[dict], latency_structures: int) -> str:
    rows = sorted(points, key=lambda p: p["latency_ms"])
    lines = [
        f"| hidden | interactions | RBF | parameters | val force MAE (meV/Å) | "
        f"val energy MAE (meV/atom) | latency (ms / {latency_structures} structures) | "
        "Pareto |",
        "|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for p in rows:
        energy = p["val_energy_mae_per_atom"]
        lines.append(
            f"| {p['hidden']} | {p['n_interactions']} | {p['n_rbf']} | {p['parameters']:,} | "
            f"{1000 * p['val_force_mae']:.2f} | "
            f"{'' if energy is None else f'{1000 * energy:.2f}'} | {p['latency_ms']:.2f} | "
            f"{'yes' if p['pareto'] else ''} |"
        )
    return "\n".join(lines) + "\n"


def plot_pareto(points: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in points:
        ax.scatter(p["latency_ms"], 1000 * p["val_force_mae"],
                   c="tab:red" if p["pareto"] else "tab:gray", zorder=3)
        ax.annotate(f"{p['hidden']}/{p['n_interactions']}/{p['n_rbf']}",
                    (p["latency_ms"], 1000 * p["val_force_mae"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["latency_ms"])
    ax.plot([p["latency_ms"] for p in front], [1000 * p["val_force_mae"] for p in front],
            c="tab:red", lw=1, label="Pareto front")
    ax.set_xlabel("latency (ms per batch, CPU)")
    ax.set_ylabel("validation force MAE (meV/Å)")
    ax.set_title("student size sweep (labels: hidden/interactions/RBF)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def read_json_if_exists(path: Path) -> dict | None:
    import json

    return json.loads(path.read_text()) if path.is_file() else None


def _positive(values: Sequence[int], name: str) -> list[int]:
    values = [int(v) for v in values]
    if not values or any(v < 1 for v in values):
        raise InputError(f"sweep --{name}: expected a comma-separated list of positive "
                         f"integers, got {values}")
    return values
