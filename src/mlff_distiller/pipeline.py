"""`mlffd distill`: generate -> label -> split -> train -> (on-policy rounds) -> evaluate ->
MD validation -> export -> benchmark -> model cards -> report, each stage cached by its inputs.

Every stage runs through :func:`mlff_distiller.stages.run_stage` in ``RUN/<stage>/``:
re-running skips finished stages, a killed run resumes (labeling and training pick up their
own partial work), and changing one stage's config re-runs that stage and those after it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from mlff_distiller.fileio import atomic_path, write_json
from mlff_distiller.pipeline_config import GATES, DistillConfig
from mlff_distiller.stages import run_stage


def distill(config: DistillConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also ``RUN/summary.json``).

    The summary has per-student metrics, gate verdicts (``passed``: bool overall) and the
    path of the HTML report.
    """
    from mlff_distiller.export.api import check_format_dependencies

    for fmt in config.export_formats:
        check_format_dependencies(fmt)  # fail now, not after training
    console = console or Console(stderr=True)
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "config.json", config.to_dict())

    def log(message: str) -> None:
        console.print(f"[bold cyan]distill[/] {escape(message)}", highlight=False)

    def stage(name: str, inputs: dict, work) -> dict:
        log(f"stage {name}")
        return run_stage(run, name, inputs, work, log=log)

    pool = stage("generate", generate_stage_inputs(config), lambda d: _generate(config, d))
    labeled = stage("label", {"pool": pool["key"], "teacher": config.teacher,
                              "weights": config.teacher_weights, "label": config.label},
                    lambda d: _label(config, Path(pool["pool"]), d))
    dataset = stage("split", {"label": labeled["key"], "split": config.split},
                    lambda d: _split(config, Path(labeled["dataset"]), d))

    rounds = []
    students = _train_all(config, dataset, stage, suffix="")
    rounds.append(_assess(config, dataset, students, stage, suffix=""))
    for r in range(1, config.onpolicy.rounds + 1):
        from mlff_distiller.onpolicy import augment_dataset

        dataset = stage(f"onpolicy-r{r}", {
            "dataset": dataset["key"], "students": {p: s["key"] for p, s in students.items()},
            "onpolicy": config.onpolicy.__dict__, "round": r, "teacher": config.teacher,
            "split": config.split},
            lambda d, ds=dataset, st=students, r=r: augment_dataset(
                config, Path(ds["dataset"]), {p: Path(s["student"]) for p, s in st.items()},
                d, round_index=r, console=console))
        students = _train_all(config, dataset, stage, suffix=f"-r{r}")
        rounds.append(_assess(config, dataset, students, stage, suffix=f"-r{r}"))
    final = rounds[-1]

    exports = {p: stage(f"export-{p}", {"student": s["key"], "export": config.export},
                        lambda d, s=s, p=p: _export(config, Path(s["student"]), p, d))
               for p, s in students.items()}
    bench = stage("bench", {"students": {p: s["key"] for p, s in students.items()},
                            "bench": config.bench, "teacher": config.teacher},
                  lambda d: _bench(config, students, d))
    cards = {p: stage(f"card-{p}", {"student": s["key"], "eval": final["evaluation"][p]["key"],
                                    "md": final["md"][p]["key"], "bench": bench["key"]},
                      lambda d, s=s, p=p: _card(Path(s["student"]), final, bench, p, d))
             for p, s in students.items()}
    guide = None
    if len(cards) > 1:
        from mlff_distiller.report.guide import write_selection_guide

        guide = {k: str(v) for k, v in write_selection_guide(
            [c["card_json"] for c in cards.values()], run / "guide").items()}

    from mlff_distiller.report.run_report import write_run_report

    summary = summarize(config, students, rounds, exports, bench, cards, guide)
    summary["report"] = str(write_run_report(run, summary))
    write_json(run / "summary.json", summary)
    return summary


def generate_stage_inputs(config: DistillConfig) -> dict[str, Any]:
    """What the generate stage's cache key hashes: its config, less ``workers`` (the pool does
    not depend on it beyond float round-off, so changing it reuses a finished pool)."""
    generate = config.generate_config(Path("pool.extxyz")).to_dict()
    del generate["workers"]
    return {"generate": generate}


# --- stage bodies ----------------------------------------------------------------------
def _generate(config: DistillConfig, stage_dir: Path) -> dict:
    from mlff_distiller.structures.generate import generate_structures

    path = generate_structures(config.generate_config(stage_dir / "pool.extxyz"))
    return {"pool": str(path)}


def _label(config: DistillConfig, pool: Path, stage_dir: Path) -> dict:
    from mlff_distiller.data.labeling import label_structures

    options = {"workers": 1, **config.label}
    summary = label_structures(pool, config.teacher, stage_dir / "data.h5",
                               teacher_weights=config.teacher_weights, device=config.device,
                               **options)
    return {"dataset": str(stage_dir / "data.h5"), "summary": summary}


def _split(config: DistillConfig, labeled: Path, stage_dir: Path) -> dict:
    """Copy the labels (without the structures ``min_bond_fraction`` / ``max_force`` drop,
    when given) into the stage and split them by molecule."""
    from mlff_distiller.data.filter import filter_dataset
    from mlff_distiller.data.splits import split_dataset

    target = stage_dir / "data.h5"
    split = {"ratios": (0.8, 0.1, 0.1), "seed": 0, **config.split}
    criteria = {k: split.pop(k) for k in ("min_bond_fraction", "max_force") if k in split}
    out = {"dataset": str(target)}
    if any(v is not None for v in criteria.values()):
        target.unlink(missing_ok=True)  # this stage is being (re)made
        summary = filter_dataset(labeled, target, **criteria)
        out["filtered"] = {k: summary[k] for k in ("criteria", "dropped", "dropped_by_reason",
                                                   "dropped_structures")}
    else:
        with atomic_path(target) as tmp:
            shutil.copyfile(labeled, tmp)
    out["splits"] = split_dataset(target, overwrite=True, **split)
    return out


def _train_all(config: DistillConfig, dataset: dict, stage, suffix: str) -> dict[str, dict]:
    out = {}
    for preset in config.students:
        train_config = config.train_config(preset)
        out[preset] = stage(f"train-{preset}{suffix}",
                            {"dataset": dataset["key"], "preset": preset,
                             "train": train_config.to_dict()},
                            lambda d, p=preset, tc=train_config: _train(dataset, p, tc, d))
    return out


def _train(dataset: dict, preset: str, train_config, stage_dir: Path) -> dict:
    from mlff_distiller.training.state import STATE_FILE
    from mlff_distiller.training.trainer import train_student

    result = train_student(dataset["dataset"], preset, train_config, stage_dir / "run",
                           resume=(stage_dir / "run" / STATE_FILE).exists())
    student = stage_dir / f"{preset}.safetensors"
    shutil.copyfile(result["best_checkpoint"], student)
    return {"student": str(student), "metrics": result.get("metrics", {})}


def _assess(config: DistillConfig, dataset: dict, students: dict, stage, suffix: str) -> dict:
    """Hold-out evaluation and MD validation of one round's students."""
    evaluation, md = {}, {}
    for p, s in students.items():
        evaluation[p] = stage(f"evaluate-{p}{suffix}",
                              {"student": s["key"], "dataset": dataset["key"],
                               "evaluate": config.evaluate},
                              lambda d, s=s: _evaluate(config, Path(s["student"]),
                                                       Path(dataset["dataset"]), d))
        md[p] = stage(f"md-{p}{suffix}", {"student": s["key"], "md": config.md,
                                          "teacher": config.teacher, "dataset": dataset["key"]},
                      lambda d, s=s: _md(config, Path(s["student"]),
                                         Path(dataset["dataset"]), d))
    return {"evaluation": evaluation, "md": md}


def _evaluate(config: DistillConfig, student: Path, dataset: Path, stage_dir: Path) -> dict:
    from mlff_distiller.evaluation.evaluate import evaluate_student

    options = {"split": "test", **config.evaluate}
    result = evaluate_student(student, dataset, out_dir=stage_dir, device=config.device,
                              **options)
    return {"json": result["files"]["json"], "figure": result["files"]["figure"],
            "forces": result["forces"], "energy": result.get("energy", {})}


def _md(config: DistillConfig, student: Path, dataset: Path, stage_dir: Path) -> dict:
    from mlff_distiller.md.validate import validate_md

    teacher = config.teacher if config.md.get("with_teacher", True) else None
    molecules = config.md.get("molecules") or held_out_molecules(
        dataset, int(config.md.get("n_molecules", 2)))
    result = validate_md(student, molecules, teacher=teacher,
                         config=config.md_config(), out_dir=stage_dir, device=config.device)
    return {"json": result["files"]["json"], "summary": result["summary"]}


def held_out_molecules(dataset: Path, count: int) -> list:
    """The first structure of up to ``count`` test-split molecules, as ``ase.Atoms``
    (MD validation then runs on molecules the students never trained on)."""
    import numpy as np

    from mlff_distiller.data.dataset import LabeledDataset

    test = LabeledDataset(dataset, split="test")
    return [test.atoms(int(np.flatnonzero(test.molecule_ids == mol)[0]))
            for mol in np.unique(test.molecule_ids)[:count]]


def _export(config: DistillConfig, student: Path, preset: str, stage_dir: Path) -> dict:
    from mlff_distiller.export.api import export_student

    suffixes = {"torchscript": ".ts", "onnx": ".onnx", "aoti": ".pt2", "metatomic": ".pt"}
    files = {}
    for fmt in config.export_formats:
        path = stage_dir / f"{preset}{suffixes.get(fmt, '.' + fmt)}"
        report = export_student(student, fmt, path)
        files[fmt] = {"path": str(path), "parity": report.get("parity", report.get("checks"))}
    return {"files": files}


def _bench(config: DistillConfig, students: dict, stage_dir: Path) -> dict:
    from mlff_distiller.bench.runner import benchmark

    options = {"formats": ["eager", "fast", "compiled", "torchscript"], "batch_sizes": [1, 8, 32],
               "threads": [1], "repeats": 5, **config.bench}
    teacher = options.pop("teacher", config.teacher)
    result = benchmark([s["student"] for s in students.values()], teacher=teacher,
                       out_dir=stage_dir, **options)
    return {"json": str(stage_dir / "benchmark.json"), "per_model": result.get("per_model", {}),
            "teacher_speedup": result.get("teacher_speedup", result.get("summary"))}


def _card(student: Path, final: dict, bench: dict, preset: str, stage_dir: Path) -> dict:
    from mlff_distiller.report.card import write_card

    paths = write_card(student, eval_json=final["evaluation"][preset]["json"],
                       md_json=final["md"][preset]["json"],
                       bench_json=bench["per_model"].get(preset), out_dir=stage_dir)
    return {"card_json": str(paths["json"]), "markdown": str(paths["markdown"]),
            "html": str(paths["html"])}


# --- summary and gates -------------------------------------------------------------------
def check_gates(gates: dict[str, float], evaluation: dict, md: dict) -> list[dict]:
    """Verdict of each gate; a metric that was not measured fails its gate."""
    sources = {"evaluation": evaluation, "md": md}
    verdicts = []
    for name, threshold in gates.items():
        source, path, op, what = GATES[name]
        value: Any = sources[source]
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            passed = False
        else:
            passed = value >= threshold if op == ">=" else value <= threshold
        verdicts.append({"gate": name, "what": what, "value": value, "op": op,
                         "threshold": threshold, "passed": bool(passed)})
    return verdicts


def summarize(config, students, rounds, exports, bench, cards, guide) -> dict:
    """Per-student metrics and gates, on-policy effect per round, paths of everything."""
    import json

    final = rounds[-1]
    per_student, all_passed = {}, True
    for p, s in students.items():
        evaluation = json.loads(Path(final["evaluation"][p]["json"]).read_text())
        md = json.loads(Path(final["md"][p]["json"]).read_text())
        gates = check_gates(config.gates, evaluation, md)
        passed = all(g["passed"] for g in gates)
        all_passed &= passed
        per_student[p] = {
            "student": s["student"], "forces": evaluation.get("forces", {}),
            "energy": evaluation.get("energy", {}), "md": md.get("summary", {}),
            "card": cards[p], "exports": exports[p]["files"], "gates": gates,
            "verdict": "PASS" if passed else "FAIL",
        }
    from mlff_distiller.report.run_report import headline_metrics

    effect = [{"round": r, **{p: headline_metrics(rd["evaluation"][p]["forces"],
                                                  rd["evaluation"][p].get("energy", {}),
                                                  rd["md"][p]["summary"])
                              for p in rd["evaluation"]}}
              for r, rd in enumerate(rounds)]
    return {"run_dir": config.run_dir, "teacher": config.teacher, "students": per_student,
            "onpolicy_rounds": effect, "bench": bench.get("json"), "guide": guide,
            "passed": all_passed}
