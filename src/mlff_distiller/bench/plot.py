"""Figure of a benchmark: throughput and latency against batch size."""

from __future__ import annotations

import os
from typing import Any

from mlff_distiller.fileio import atomic_path


def plot_benchmark(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Two panels: structures/s and latency (ms) vs batch size, one line per run.

    The teacher's throughput (one structure per call) is a dashed horizontal line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_tp, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.5))
    pairs = list(dict.fromkeys((run["model"], run["format"]) for run in result["results"]))
    colors = plt.get_cmap("tab20")
    for run in result["results"]:
        sizes = [e["batch_size"] for e in run["benchmarks"]]
        label = f"{run['model']} {run['format']} t={run['threads']}"
        style = dict(ls="-" if run["threads"] == 1 else "--", marker="o", ms=3,
                     color=colors(pairs.index((run["model"], run["format"])) % 20))
        ax_tp.plot(sizes, [e["throughput_samples_per_sec"] for e in run["benchmarks"]],
                   label=label, **style)
        ax_lat.plot(sizes, [e["latency_ms"] for e in run["benchmarks"]], **style)
    teacher = result.get("teacher") or {}
    for n_threads, t in (teacher.get("per_threads") or {}).items():
        ax_tp.axhline(t["throughput_samples_per_sec"], color="k", ls=":", lw=1,
                      label=f"teacher {teacher['name']} t={n_threads}")
    for ax, ylabel in ((ax_tp, "structures / s"), (ax_lat, "latency per call (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (structures)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    ax_tp.legend(fontsize=6, ncol=2)
    fig.suptitle(f"{result['structure']} ({result['atoms_per_structure']} atoms), "
                 f"{result['device']}, energy+forces+stress, median of {result['repeats']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


__all__ = ["plot_benchmark"]
