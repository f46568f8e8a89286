"""MD validation figures: energies and temperature vs time, bond/angle distributions."""

from __future__ import annotations

import os

import numpy as np

from mlff_distiller.fileio import atomic_path

MAX_ROWS = 6  # molecules shown in the energy figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def energy_figure(traces: list[dict], config, path: str | os.PathLike) -> None:
    """One row per molecule: NVE energies per atom relative to t=0 (total, potential,
    kinetic) and NVT temperature, with the failure step marked."""
    plt = _pyplot()
    shown = traces[:MAX_ROWS]
    fig, axes = plt.subplots(len(shown), 2, figsize=(13, 3.0 * len(shown) + 0.6), squeeze=False)
    for row, trace in zip(axes, shown, strict=True):
        n = trace["n_atoms"]
        nve, nvt = trace["nve"], trace["nvt"]
        ax = row[0]
        if len(nve["time_fs"]):
            e_tot = nve["potential_eV"] + nve["kinetic_eV"]
            ax.plot(nve["time_fs"], (nve["potential_eV"] - nve["potential_eV"][0]) / n,
                    lw=0.8, label="potential")
            ax.plot(nve["time_fs"], (nve["kinetic_eV"] - nve["kinetic_eV"][0]) / n,
                    lw=0.8, label="kinetic")
            twin = ax.twinx()  # the total on its own scale, so that drift is visible
            twin.plot(nve["time_fs"], (e_tot - e_tot[0]) / n * 1000, "k", lw=1.2)
            twin.set_ylabel("total E - E(0) (meV/atom)")
        _mark_failure(ax, nve, config)
        ax.set(xlabel="time (fs)", ylabel="E - E(0) (eV/atom)",
               title=f"{trace['name']}: NVE {config.timestep_fs:g} fs (black: total)")
        ax.legend(fontsize=8, loc="upper left")
        ax = row[1]
        ax.plot(nvt["time_fs"], nvt["temperature_K"], lw=0.6, label="student")
        if "teacher_nvt" in trace:
            t = trace["teacher_nvt"]
            ax.plot(t["time_fs"], t["temperature_K"], lw=0.6, alpha=0.7, label="teacher")
        ax.axhline(config.temperature_K, color="k", ls="--", lw=0.8)
        _mark_failure(ax, nvt, config)
        ax.set(xlabel="time (fs)", ylabel="T (K)",
               title=f"{trace['name']}: NVT Langevin {config.temperature_K:g} K"
                     + ("" if nvt["stable"] else " - UNSTABLE"))
        ax.legend(fontsize=8, loc="upper right")
    if len(traces) > MAX_ROWS:
        fig.text(0.5, 0.005, f"{len(traces) - MAX_ROWS} more molecules in the JSON",
                 ha="center")
    fig.tight_layout()
    _save(fig, path)


def distributions_figure(traces: list[dict], path: str | os.PathLike) -> None:
    """Bond lengths and bond angles from student vs teacher NVT, pooled over molecules."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, kind, unit in ((axes[0], "bonds", "bond length (Å)"),
                           (axes[1], "angles", "bond angle (deg)")):
        s = [t["samples"][kind]["student"] for t in traces if kind in t.get("samples", {})]
        q = [t["samples"][kind]["teacher"] for t in traces if kind in t.get("samples", {})]
        if s and q:
            s, q = np.concatenate(s), np.concatenate(q)
            bins = np.linspace(min(s.min(), q.min()), max(s.max(), q.max()), 80)
            ax.hist(q, bins=bins, density=True, alpha=0.5, label="teacher")
            ax.hist(s, bins=bins, density=True, histtype="step", lw=1.5, label="student")
            ax.legend()
        ax.set(xlabel=unit, ylabel="density", title=f"NVT {kind}, all molecules")
    fig.tight_layout()
    _save(fig, path)


def _mark_failure(ax, run: dict, config) -> None:
    if run["failure"] is not None:
        ax.axvline(run["failure"]["step"] * config.timestep_fs, color="r", lw=1.2)


def _save(fig, path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
