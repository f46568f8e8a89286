"""The HTML report of a `mlffd distill` run: one page linking every student's card,
figures, exports and the model-selection guide, with gate verdicts and the on-policy effect."""

from __future__ import annotations

import html
import os
from pathlib import Path

from mlff_distiller.fileio import write_text


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _link(run_dir: Path, path: str | None, text: str) -> str:
    if not path:
        return "n/a"
    rel = os.path.relpath(path, run_dir)
    return f'<a href="{html.escape(rel)}">{html.escape(text)}</a>'


def write_run_report(run_dir: Path, summary: dict) -> Path:
    """Write ``run_dir/report.html`` from the pipeline summary and return its path."""
    run_dir = Path(run_dir)
    rows, gate_rows, file_rows = [], [], []
    for preset, s in summary["students"].items():
        f, md = s.get("forces", {}), s.get("md", {})
        verdict = s["verdict"]
        rows.append(
            f"<tr><td>{html.escape(preset)}</td><td>{_fmt(f.get('r2'))}</td>"
            f"<td>{_fmt(f.get('mae'))}</td><td>{_fmt(f.get('rmse'))}</td>"
            f"<td>{_fmt(md.get('nve_drift_percent_per_100_steps_max'))}</td>"
            f"<td>{_fmt(md.get('nvt_stable_fraction'))}</td>"
            f"<td>{_fmt(md.get('optimisation_rmsd_mean_A'))}</td>"
            f'<td class="{verdict.lower()}">{verdict}</td>'
            f"<td>{_link(run_dir, s['card'].get('html'), 'card')}</td></tr>")
        for g in s["gates"]:
            status = "PASS" if g["passed"] else "FAIL"
            gate_rows.append(
                f"<tr><td>{html.escape(preset)}</td><td>{html.escape(g['what'])}</td>"
                f"<td>{_fmt(g['value'])}</td><td>{html.escape(g['op'])} {_fmt(g['threshold'])}</td>"
                f'<td class="{status.lower()}">{status}</td></tr>')
        links = [_link(run_dir, s["student"], "checkpoint")]
        links += [_link(run_dir, e["path"], fmt) for fmt, e in s.get("exports", {}).items()]
        links.append(_link(run_dir, s["card"].get("markdown"), "card (Markdown)"))
        file_rows.append(f"<li>{html.escape(preset)}: {' · '.join(links)}</li>")
    rounds = summary.get("onpolicy_rounds", [])
    round_rows = []
    for round_index, preset, m in round_metrics(rounds):
        round_rows.append(
            f"<tr><td>{round_index}</td><td>{html.escape(preset)}</td>"
            f"<td>{_fmt(m.get('force_mae'))}</td><td>{_fmt(m.get('force_r2'))}</td>"
            f"<td>{_fmt(m.get('energy_mae_per_atom'))}</td>"
            f"<td>{_fmt(m.get('nve_stable_fraction'))}</td>"
            f"<td>{_fmt(m.get('nve_drift_percent_per_100_steps_max'))}</td>"
            f"<td>{_fmt(m.get('nvt_stable_fraction'))}</td>"
            f"<td>{_fmt(m.get('optimisation_rmsd_mean_A'))}</td></tr>")
    guide = summary.get("guide") or {}
    overall = "PASS" if summary["passed"] else "FAIL"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlff-distiller run report</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em}}
.pass{{color:#070;font-weight:bold}}.fail{{color:#b00;font-weight:bold}}</style></head>
<body><h1>Distillation report</h1>
<p>Teacher: <code>{html.escape(str(summary['teacher']))}</code>. Overall:
<span class="{overall.lower()}">{overall}</span>.
Hold-out metrics are on molecules never seen in training.</p>
<h2>Students</h2>
<table><tr><th>student</th><th>force R²</th><th>force MAE (eV/Å)</th><th>force RMSE (eV/Å)</th>
<th>NVE drift (%/100 steps, worst)</th><th>NVT stable fraction</th>
<th>relaxed RMSD vs teacher (Å)</th><th>gates</th><th>card</th></tr>
{''.join(rows)}</table>
<h2>Acceptance gates</h2>
{'<table><tr><th>student</th><th>gate</th><th>value</th><th>required</th><th>verdict</th></tr>'
 + ''.join(gate_rows) + '</table>' if gate_rows else '<p>No gates configured.</p>'}
<h2>On-policy augmentation</h2>
{'<table><tr><th>round</th><th>student</th><th>force MAE (eV/Å)</th><th>force R²</th>'
 '<th>energy MAE (eV/atom)</th><th>NVE stable</th><th>NVE drift (%/100 steps)</th>'
 '<th>NVT stable</th><th>relaxed RMSD (Å)</th></tr>' + ''.join(round_rows) + '</table>'
 if len(rounds) > 1 else '<p>Not used in this run (onpolicy.rounds = 0).</p>'}
<h2>Files</h2><ul>{''.join(file_rows)}
<li>benchmark: {_link(run_dir, summary.get('bench'), 'benchmark.json')}</li>
<li>model-selection guide: {_link(run_dir, guide.get('html'), 'guide')}</li></ul>
</body></html>
"""
    return write_text(run_dir / "report.html", page)


def round_metrics(rounds: list[dict]):
    """``(round, preset, metrics)`` for every student of every on-policy round of a summary
    (``summary["onpolicy_rounds"]``)."""
    for r in rounds:
        for preset, metrics in r.items():
            if preset != "round":
                yield r["round"], preset, metrics


def headline_metrics(forces: dict, energy: dict, md_summary: dict) -> dict:
    """The numbers a student is compared by (hold-out accuracy, MD stability), from its
    evaluation's ``forces`` / ``energy`` and its MD validation's ``summary``."""
    return {"force_mae": forces.get("mae"), "force_rmse": forces.get("rmse"),
            "force_r2": forces.get("r2"), "energy_mae_per_atom": energy.get("mae_per_atom"),
            **{k: md_summary.get(k) for k in ("nve_stable_fraction",
                                              "nve_drift_percent_per_100_steps_max",
                                              "nvt_stable_fraction", "optimisation_rmsd_mean_A")}}
