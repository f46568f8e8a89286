"""The force-analysis figure: six panels from one split's predictions and metrics."""

from __future__ import annotations

import os

import numpy as np

from mlff_distiller.fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def evaluation_figure(preds, result: dict, path: str | os.PathLike) -> None:
    """Write the 6-panel PNG: force parity (hexbin), energy parity (per atom), error-norm
    histogram (log), angular-error histogram, per-element force MAE, error vs |F_teacher|.

    Args:
        preds: :class:`~mlff_distiller.evaluation.evaluate.Predictions`.
        result: the metrics dict of :func:`evaluate_student` (model/dataset/forces/...).
        path: PNG destination (written atomically).
    """
    from mlff_distiller.evaluation.metrics import angular_errors, error_norms

    plt = _pyplot()
    fm, em = result["forces"], result["energy"]
    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    model, data = result["model"], result["dataset"]
    teacher = data.get("teacher") or model.get("teacher") or "unknown teacher"
    fig.suptitle(
        f"{model['name']} ({model['preset']}, {model['parameters']:,} params) vs teacher "
        f"{teacher}\non {data['name']} [{data['split']}], {data['n_structures']} structures, "
        f"{data['n_atoms']} atoms", fontsize=12)

    ax = axes[0, 0]
    ref, pred = preds.ref_forces.ravel(), preds.pred_forces.ravel()
    hb = ax.hexbin(ref, pred, gridsize=60, bins="log", mincnt=1, cmap="viridis")
    lim = [min(ref.min(), pred.min()), max(ref.max(), pred.max())]
    ax.plot(lim, lim, "r--", lw=1)
    fig.colorbar(hb, ax=ax, label="components (log)")
    ax.set(xlabel="teacher force component (eV/Å)", ylabel="student (eV/Å)",
           title=f"Force parity: R² {_f(fm['r2'], 4)}, RMSE {_f(fm['rmse'])} eV/Å")

    ax = axes[0, 1]
    e_ref = preds.ref_energy / preds.n_atoms
    e_pred = preds.pred_energy / preds.n_atoms
    ax.scatter(e_ref, e_pred, s=8, alpha=0.6)
    lim = [min(e_ref.min(), e_pred.min()), max(e_ref.max(), e_pred.max())]
    ax.plot(lim, lim, "r--", lw=1)
    ax.set(xlabel="teacher energy (eV/atom)", ylabel="student energy (eV/atom)",
           title=f"Energy parity: MAE {_f(em['mae_per_atom'] * 1000, 2)} meV/atom")

    ax = axes[0, 2]
    norms = error_norms(preds.pred_forces, preds.ref_forces)
    ax.hist(norms, bins=60, log=True, color="tab:blue")
    for key, value in fm["error_norm_percentiles"].items():
        if value is not None and np.isfinite(value):
            ax.axvline(value, ls=":", color="k", lw=1)
            ax.text(value, ax.get_ylim()[1], key, rotation=90, va="top", fontsize=8)
    ax.set(xlabel="|F_student - F_teacher| per atom (eV/Å)", ylabel="atoms (log)",
           title="Force-error norm")

    ax = axes[1, 0]
    angles = angular_errors(preds.pred_forces, preds.ref_forces,
                            result["settings"]["min_force_for_angles"])
    ax.hist(angles, bins=np.linspace(0, 180, 61), color="tab:orange")
    ax.set(xlabel="angle between force vectors (deg)", ylabel="atoms",
           title=f"Angular error: mean {_f(fm['angular_error_mean_deg'], 2)}°, median "
                 f"{_f(fm['angular_error_median_deg'], 2)}° "
                 f"(|F|≥{result['settings']['min_force_for_angles']:g})")

    ax = axes[1, 1]
    elements = list(result["per_element"])
    x = np.arange(len(elements))
    maes = [result["per_element"][e]["mae"] for e in elements]
    rmses = [result["per_element"][e]["rmse"] for e in elements]
    ax.bar(x - 0.2, maes, 0.4, label="MAE")
    ax.bar(x + 0.2, rmses, 0.4, label="RMSE")
    ax.set_xticks(x, [f"{e}\n({result['per_element'][e]['n_atoms']})" for e in elements])
    ax.set(ylabel="force error (eV/Å)", title="Per element (atoms)")
    ax.legend()

    ax = axes[1, 2]
    rows = [r for r in result["error_vs_force_magnitude"] if r["count"]]
    centres = [r["mean_magnitude"] for r in rows]
    ax.plot(centres, [r["mean_error"] for r in rows], "o-", label="mean |ΔF| (eV/Å)")
    ax.set(xlabel="teacher |F| (eV/Å), bin mean", ylabel="mean |ΔF| (eV/Å)",
           title="Error vs force magnitude")
    twin = ax.twinx()
    twin.plot(centres, [r["relative_error"] for r in rows], "s--", color="tab:red",
              label="relative")
    twin.set_ylabel("relative error |ΔF|/|F|", color="tab:red")
    ax.legend(loc="upper left")

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"
