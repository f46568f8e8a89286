"""Model cards: one student's size, provenance, accuracy, MD behaviour, speed and uses.

:func:`write_card` gathers the checkpoint's own metadata and the JSON results of
``mlffd evaluate``, ``mlffd md`` and the benchmark, and writes ``card.md``, a
self-contained ``card.html`` and ``card.json`` (the numbers and judged uses, read by the
model-selection guide).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from mlff_distiller.bench.runner import FORMAT_USAGE
from mlff_distiller.errors import InputError
from mlff_distiller.evaluation.evaluate import default_out_dir
from mlff_distiller.fileio import write_json, write_text
from mlff_distiller.report.render import fmt, to_html, to_markdown
from mlff_distiller.report.uses import UseThresholds, derive_uses, teacher_speedup, thresholds_table


def read_result(path: str | os.PathLike | None, what: str) -> dict | None:
    """Load a results JSON, or ``None`` when ``path`` is ``None``."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} JSON {str(path)!r} does not exist")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} JSON {path}: not valid JSON ({exc})") from None


def model_summary(student_path: str | os.PathLike) -> dict:
    """Size, architecture and provenance of a student, from its checkpoint."""
    from ase.data import chemical_symbols

    from mlff_distiller.models.checkpoint import load_student
    from mlff_distiller.models.painn import count_parameters
    from mlff_distiller.models.presets import preset_name

    model = load_student(student_path)
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    return {
        "path": str(student_path),
        "name": Path(student_path).stem,
        "preset": preset_name(model.config) or "custom",
        "parameters": count_parameters(model),
        "file_size_bytes": Path(student_path).stat().st_size,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "config": model.config.to_dict(),
        "elements": [chemical_symbols[z] for z in model.elements],
        "teacher": meta.get("teacher") or None,
        "dataset": meta.get("dataset") or None,
        "dataset_hash": meta.get("dataset_hash") or None,
        "zoo_name": meta.get("zoo_name") or None,
        "command": meta.get("command") or None,
        "training": {k: meta[k] for k in ("step", "epoch", "checkpoint", "metrics") if k in meta},
    }


def write_card(
    student_path: str | os.PathLike,
    eval_json: str | os.PathLike | None = None,
    md_json: str | os.PathLike | None = None,
    bench_json: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    thresholds: UseThresholds | None = None,
) -> dict[str, Path]:
    """Write the model card of a student; returns ``{"markdown", "html", "json"}`` paths.

    ``eval_json`` / ``md_json`` default to the files ``mlffd evaluate`` (test split) and
    ``mlffd md`` write beside the student, when they exist. ``out_dir`` defaults to
    ``<student dir>/<stem>_card``.
    """
    thresholds = thresholds or UseThresholds()
    model = model_summary(student_path)
    if eval_json is None:
        found = default_out_dir(student_path, "eval") / "evaluation_test.json"
        eval_json = found if found.is_file() else None
    if md_json is None:
        found = default_out_dir(student_path, "md") / "md_validation.json"
        md_json = found if found.is_file() else None
    evaluation = read_result(eval_json, "evaluation")
    md = read_result(md_json, "MD validation")
    bench = read_result(bench_json, "benchmark")
    for what, res in (("evaluation", evaluation), ("MD validation", md)):
        if res is not None and res.get("model", {}).get("parameters") not in (
                None, model["parameters"]):
            raise InputError(
                f"the {what} JSON describes a model with {res['model']['parameters']:,} "
                f"parameters, but {student_path} has {model['parameters']:,}: pass the JSON "
                "of this student")
    uses = derive_uses(evaluation, md, bench, thresholds)
    out = Path(out_dir) if out_dir is not None else default_out_dir(student_path, "card")
    card = {
        "model": model,
        "sources": {"evaluation": _s(eval_json), "md": _s(md_json), "bench": _s(bench_json)},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "evaluation": _headline_eval(evaluation),
        "md": md and md.get("summary"),
        "speed": _headline_speed(bench),
        "uses": uses,
        "thresholds": dict(thresholds_table(thresholds)),
    }
    blocks = _blocks(model, evaluation, md, bench, uses, thresholds)
    paths = {"markdown": out / "card.md", "html": out / "card.html", "json": out / "card.json"}
    write_text(paths["markdown"], to_markdown(blocks, out))
    write_text(paths["html"], to_html(blocks, f"Model card: {model['name']}"))
    write_json(paths["json"], card)
    return paths


def _s(path) -> str | None:
    return None if path is None else str(path)


def _headline_eval(ev: dict | None) -> dict | None:
    if ev is None:
        return None
    return {"split": ev["dataset"]["split"], "dataset": ev["dataset"]["name"],
            "force_mae": ev["forces"]["mae"], "force_rmse": ev["forces"]["rmse"],
            "force_r2": ev["forces"]["r2"],
            "angular_error_mean_deg": ev["forces"]["angular_error_mean_deg"],
            "energy_mae_per_atom": ev["energy"]["mae_per_atom"],
            "conformer_spearman_mean": ev["conformer_ranking"]["spearman_mean"]}


def _headline_speed(bench: dict | None) -> dict | None:
    if bench is None:
        return None
    summary = bench.get("summary", {})
    batch1 = [b for b in bench.get("benchmarks", []) if b.get("batch_size") == 1]
    return {"device": bench.get("device"), "peak_throughput": summary.get("peak_throughput"),
            "optimal_batch_size": summary.get("optimal_batch_size"),
            "latency_ms_batch1": batch1[0].get("latency_ms") if batch1 else None,
            "memory_per_model_mb": summary.get("memory_per_model_mb"),
            "teacher_speedup": teacher_speedup(bench)}


def _blocks(model, ev, md, bench, uses, thresholds) -> list[tuple]:
    cfg = model["config"]
    teacher = model["teacher"] or (ev or {}).get("dataset", {}).get("teacher") or "unknown"
    b: list[tuple] = [
        ("h1", f"Model card: {model['name']}"),
        ("p", f"PaiNN student '{model['preset']}' with {model['parameters']:,} parameters "
              f"({model['file_size_bytes'] / 1024:.0f} KiB, {model['dtype']}), distilled from "
              f"teacher {teacher}. Elements: {', '.join(model['elements'])}."),
        ("h2", "Model"),
        ("table", ["property", "value"], [
            ["preset", model["preset"]], ["parameters", model["parameters"]],
            ["file size (bytes)", model["file_size_bytes"]], ["dtype", model["dtype"]],
            ["hidden features", cfg["hidden"]], ["interactions", cfg["n_interactions"]],
            ["radial basis", f"{cfg['n_rbf']} x {cfg['rbf']}"],
            ["cutoff (Å)", cfg["cutoff"]], ["checkpoint", model["path"]]]),
        ("h2", "Provenance"),
        ("table", ["property", "value"], _provenance_rows(model, ev)),
        ("h2", "Element coverage"),
        ("p", "The student knows " + ", ".join(model["elements"]) + "; structures with any "
              "other element are refused by every mlffd command."),
    ]
    if ev is not None and ev.get("per_element"):
        b.append(("table", ["element", "atoms evaluated", "force MAE (eV/Å)",
                            "force RMSE (eV/Å)"],
                  [[el, v["n_atoms"], v["mae"], v["rmse"]] for el, v in ev["per_element"].items()]))
    b += _accuracy_blocks(ev) + _md_blocks(md) + _speed_blocks(bench)
    b.append(("h2", "Recommended uses"))
    b.append(("list", [f"{u['use']}: {u['evidence']}" for u in uses
                       if u["status"] == "recommended"] or ["none of the judged uses passes"]))
    b.append(("h2", "Not recommended"))
    b.append(("list", [f"{u['use']}: {u['evidence']}" for u in uses
                       if u["status"] == "not recommended"]
              + [f"Molecules containing elements other than {', '.join(model['elements'])}"]))
    missing = [f"{u['use']}: {u['evidence']}" for u in uses if u["status"] == "not assessed"]
    if missing:
        b += [("h2", "Not assessed"), ("p", "Measure with `mlffd evaluate`, `mlffd md --teacher "
                                            "...` and the benchmark, then rebuild the card."),
              ("list", missing)]
    b += [("h2", "Thresholds used"), ("table", ["threshold", "value"],
                                      thresholds_table(thresholds))]
    return b


def _provenance_rows(model, ev) -> list[list]:
    rows = [["teacher", model["teacher"] or "not recorded"],
            ["training dataset", model["dataset"] or "not recorded"],
            ["training dataset hash", model["dataset_hash"] or "not recorded"]]
    if model.get("command"):
        rows.insert(0, ["produced by", f"`{model['command']}`"])
    if model.get("zoo_name"):
        name = model["zoo_name"]
        rows.insert(0, ["zoo name", f'`{name}`: `load_student("{name}")`'])
    training = model["training"]
    for key in ("checkpoint", "step", "epoch"):
        if key in training:
            rows.append([f"training {key}", training[key]])
    for key, value in (training.get("metrics") or {}).items():
        if isinstance(value, (int, float)):
            rows.append([f"training metric {key}", value])
    if ev is not None:
        d = ev["dataset"]
        rows += [["evaluation dataset", f"{d['name']} [{d['split']}]"],
                 ["evaluation dataset hash", d["content_hash"]],
                 ["evaluation teacher", f"{d.get('teacher')} {d.get('teacher_version') or ''}"]]
        if d.get("note"):
            rows.append(["note", d["note"]])
    return rows


def _relative_energy_rows(rel) -> list[list]:
    """Energy MAE once each molecule's mean offset is removed (absent from older JSON)."""
    if not rel or rel.get("mae_per_atom") is None:
        return []
    return [["energy MAE per atom, each molecule's offset removed",
             1000 * rel["mae_per_atom"], f"meV/atom (over {rel['n_molecules']} molecules)"]]


def _accuracy_blocks(ev) -> list[tuple]:
    if ev is None:
        return [("h2", "Accuracy against the teacher"), ("p", "Not measured (no evaluation "
                                                              "JSON; run mlffd evaluate).")]
    f, e, d = ev["forces"], ev["energy"], ev["dataset"]
    p = f["error_norm_percentiles"]
    rows = [["force MAE", f["mae"], "eV/Å"], ["force RMSE", f["rmse"], "eV/Å"],
            ["force R²", f["r2"], ""], ["max component error", f["max_abs_error"], "eV/Å"]]
    rows += [[f"error norm {k}", v, "eV/Å"] for k, v in p.items()]
    rows += [["mean angular error", f["angular_error_mean_deg"], "deg"],
             ["median angular error", f["angular_error_median_deg"], "deg"],
             ["energy MAE per atom", None if e["mae_per_atom"] is None
              else 1000 * e["mae_per_atom"], "meV/atom"],
             ["energy MAE per structure", e["mae_per_structure"], "eV"],
             *_relative_energy_rows(ev.get("relative_energy")),
             ["conformer Spearman (mean)", ev["conformer_ranking"]["spearman_mean"],
              f"over {ev['conformer_ranking']['n_molecules']} molecules"]]
    bins = [[f"{r['lo']:g}-{r['hi']:g}" if r["hi"] is not None else f">= {r['lo']:g}",
             r["count"], r["mean_error"], r["relative_error"]]
            for r in ev["error_vs_force_magnitude"] if r["count"]]  # JSON has hi=None for inf
    out = [("h2", "Accuracy against the teacher"),
           ("p", f"{d['name']} [{d['split']}]: {d['n_structures']:,} structures, "
                 f"{d['n_atoms']:,} atoms; angular errors over atoms with teacher |F| >= "
                 f"{ev['settings']['min_force_for_angles']:g} eV/Å."),
           ("table", ["metric", "value", "unit"], rows),
           ("h3", "Error vs teacher force magnitude"),
           ("table", ["|F| bin (eV/Å)", "atoms", "mean |ΔF| (eV/Å)", "relative"], bins)]
    if ev.get("files", {}).get("figure") and Path(ev["files"]["figure"]).is_file():
        out.append(("figure", ev["files"]["figure"], "Force analysis against the teacher"))
    return out


def _md_blocks(md) -> list[tuple]:
    if md is None:
        return [("h2", "MD validation"), ("p", "Not measured (no MD JSON; run mlffd md).")]
    s, c = md["summary"], md["config"]
    rows = [[m["name"], m["n_atoms"], m["nve"].get("drift_percent_per_100_steps"),
             m["nve"].get("drift_eV_per_atom_per_ps"), m["nve"]["stable"],
             m["nvt"]["stable"], _failure(m["nvt"]),
             (m.get("distributions") or {}).get("bonds_overlap")] for m in md["molecules"]]
    out = [("h2", "MD validation"),
           ("p", f"NVE velocity Verlet and NVT Langevin at {c['temperature_K']:g} K, "
                 f"{c['timestep_fs']:g} fs steps ({c['nve_steps']} NVE / {c['nvt_steps']} NVT "
                 f"steps) from Maxwell-Boltzmann starts; teacher: {md.get('teacher') or 'none'}."
                 f" NVE drift is in % of the thermal energy (3/2) n kB T per 100 steps "
                 f"(bar: < {s['drift_bar_percent']:g})."),
           ("table", ["molecule", "atoms", "NVE drift %/100 steps", "drift eV/atom/ps",
                      "NVE stable", "NVT stable", "NVT failure", "bond overlap"], rows),
           ("table", ["summary", "value"], [[k, v] for k, v in s.items()])]
    for key, caption in (("energy", "Energies and temperature vs time"),
                         ("distributions", "Bond lengths and angles, student vs teacher MD")):
        path = md.get("files", {}).get("figures", {}).get(key)
        if path and Path(path).is_file():
            out.append(("figure", path, caption))
    return out


def _failure(run: dict) -> str:
    f = run.get("failure")
    return "-" if not f else f"step {f['step']}: {f['reason']}"


def _how_to_run(bench: dict) -> list[tuple]:
    """A paragraph naming the call that runs the student as its fastest format was timed
    (and the compiled program's one-off build time), or nothing for an unknown format."""
    usage = FORMAT_USAGE.get(bench.get("format"))
    if usage is None:
        return []
    text = f"These numbers are for {usage}."
    if bench.get("compile_seconds") is not None:
        how = "loaded from the cache" if bench.get("loaded_from_cache") else "built"
        text += f" Here the program was {how} in {fmt(bench['compile_seconds'])} s."
    return [("p", text)]


def _speed_blocks(bench) -> list[tuple]:
    if bench is None:
        return [("h2", "Speed"), ("p", "Not measured (no benchmark JSON).")]
    rows = [[r.get("batch_size"), r.get("latency_ms"), r.get("throughput_samples_per_sec")]
            for r in bench.get("benchmarks", [])]
    sm = bench.get("summary", {})
    return [("h2", "Speed"),
            ("p", f"Model {bench.get('model', '?')} on {bench.get('device', '?')}."),
            *_how_to_run(bench),
            ("table", ["batch size", "latency (ms)", "throughput (samples/s)"], rows),
            ("table", ["summary", "value"],
             [["peak throughput (samples/s)", sm.get("peak_throughput")],
              ["optimal batch size", sm.get("optimal_batch_size")],
              ["memory per model (MB)", sm.get("memory_per_model_mb")],
              ["speed-up vs teacher", fmt(teacher_speedup(bench))]])]
