"""Turn the students of a finished ``mlffd distill`` run into the package's model zoo.

``release_zoo("runs/organic")`` copies each student of the run into
``mlff_distiller/resources/zoo/<prefix>-<preset>.safetensors`` (the names of
:data:`mlff_distiller.models.zoo.ZOO`), adding to its metadata the zoo name, the command
that produced it and its hold-out and MD numbers, and writes ``docs/zoo.md`` plus one
Markdown model card per student under ``docs/zoo/<name>/`` (figures and result JSON copied
beside it, so the docs stand alone). A run whose gates failed is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mlff_distiller.errors import InputError
from mlff_distiller.fileio import write_json, write_text
from mlff_distiller.report.run_report import headline_metrics, round_metrics

DEFAULT_COMMAND = "mlffd distill configs/organic.yaml"


def release_zoo(run_dir: str | os.PathLike, prefix: str = "sevennet-organic",
                command: str = DEFAULT_COMMAND, zoo_dir: str | os.PathLike | None = None,
                docs_dir: str | os.PathLike = "docs") -> dict:
    """Release the run's students as zoo models; returns ``{zoo name: file}`` plus ``doc``.

    Args:
        run_dir: a finished ``mlffd distill`` run (its ``summary.json`` must exist and pass).
        prefix: zoo names are ``<prefix>-<preset>`` and must be listed in ``ZOO``.
        command: the command that produced the run, recorded in each file and card.
        zoo_dir: where the files go (default: the installed package's ``resources/zoo``).
        docs_dir: ``zoo.md`` and ``zoo/<name>/card.md`` are written here.

    Raises:
        InputError: no summary, a failed gate, or a zoo name the package does not know.
    """
    from mlff_distiller.models.checkpoint import load_student, save_student
    from mlff_distiller.models.zoo import ZOO
    from mlff_distiller.models.zoo import zoo_dir as packaged_zoo_dir
    from mlff_distiller.report.card import write_card

    run = Path(run_dir)
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{summary_path} not found: run `mlffd distill CONFIG` to the end "
                         "before releasing its students")
    summary = json.loads(summary_path.read_text())
    failed = [f"{p}: {g['gate']} = {g['value']}" for p, s in summary["students"].items()
              for g in s["gates"] if not g["passed"]]
    if not summary.get("passed") or failed:
        raise InputError(f"{run} failed its acceptance gates ({'; '.join(failed) or 'FAIL'}): "
                         "a zoo student must pass them; fix the recipe and rerun")
    names = {preset: f"{prefix}-{preset}" for preset in summary["students"]}
    unknown = sorted(n for n in names.values() if n not in ZOO)
    if unknown:
        raise InputError(f"zoo names {unknown} are not in mlff_distiller.models.zoo.ZOO "
                         f"({sorted(ZOO)}): pick a prefix the package knows")
    zoo = Path(zoo_dir) if zoo_dir is not None else packaged_zoo_dir()
    zoo.mkdir(parents=True, exist_ok=True)
    docs = Path(docs_dir)
    bench_json = summary.get("bench")
    released: dict[str, str] = {}
    rows = []
    for preset, student in summary["students"].items():
        name = names[preset]
        model = load_student(student["student"])
        headline = headline_metrics(student["forces"], student["energy"], student["md"])
        metadata = {**model.checkpoint_metadata, "zoo_name": name, "preset": preset,
                    "command": command, "teacher_spec": summary["teacher"],
                    "holdout": headline}
        target = zoo / ZOO[name]
        save_student(model, target, metadata)
        released[name] = str(target)
        card_dir = docs / "zoo" / name
        stage = Path(student["card"]["card_json"]).parent
        sources = json.loads((stage / "card.json").read_text())["sources"]
        write_card(Path(os.path.relpath(target)),  # a path that means something in the docs
                   eval_json=_localized(sources["evaluation"], card_dir, "evaluation.json"),
                   md_json=_localized(sources["md"], card_dir, "md_validation.json"),
                   bench_json=_localized(sources["bench"] or bench_json, card_dir,
                                         "benchmark.json"),
                   out_dir=card_dir)
        (card_dir / "card.html").unlink()  # the docs are Markdown; figures sit beside it
        rows.append((name, preset, headline, target.stat().st_size))
    released["doc"] = str(_write_doc(docs / "zoo.md", summary, rows, command))
    return released


def _localized(result_json: str | None, dest: Path, name: str) -> Path | None:
    """Copy a result JSON into ``dest`` with the figures it names copied beside it."""
    if not result_json or not Path(result_json).is_file():
        return None
    result = json.loads(Path(result_json).read_text())
    files = result.get("files", {})
    figures = [("figure", files)] if "figure" in files else []
    figures += [(key, files["figures"]) for key in files.get("figures", {})]
    for key, holder in figures:
        source = Path(holder[key])
        if source.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            copied = dest / f"{Path(name).stem}-{source.name}"
            shutil.copyfile(source, copied)
            holder[key] = str(copied)
    write_json(dest / name, result)
    return dest / name


def _write_doc(path: Path, summary: dict, rows: list, command: str) -> Path:
    fmt = "{:.4f}".format
    lines = [
        "# Model zoo", "",
        "Pretrained students shipped inside the package, usable offline right after "
        "install:", "",
        "```python", "from mlff_distiller import StudentCalculator, load_student",
        f'model = load_student("{rows[0][0]}")', f'atoms.calc = StudentCalculator("{rows[-1][0]}")',
        "```", "",
        f"Teacher: `{summary['teacher']}`. Produced by `{command}` followed by "
        f"`mlffd zoo release {summary['run_dir']}` (the command is also in each file's "
        "metadata, `mlffd info NAME`). Numbers are on molecules held out from training "
        "(never trained or validated on); MD on held-out molecules.", "",
        "| zoo name | preset | force R² | force MAE (eV/Å) | force RMSE (eV/Å) | "
        "energy MAE (meV/atom) | NVE drift (%/100 steps) | NVT stable | relaxed RMSD (Å) | "
        "file (KiB) | card |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, preset, h, size in rows:
        lines.append(
            f"| `{name}` | {preset} | {fmt(h['force_r2'])} | {fmt(h['force_mae'])} | "
            f"{fmt(h['force_rmse'])} | {1000 * h['energy_mae_per_atom']:.1f} | "
            f"{h['nve_drift_percent_per_100_steps_max']:.3g} | {h['nvt_stable_fraction']:.2f} | "
            f"{h['optimisation_rmsd_mean_A']:.3g} | {size / 1024:.0f} | "
            f"[card](zoo/{name}/card.md) |")
    rounds = summary.get("onpolicy_rounds", [])
    if len(rounds) > 1:
        lines += ["", "## On-policy augmentation", "",
                  "Round 0 is trained on the generated pool; each later round retrains from "
                  "scratch, with the same budget, on the pool plus the student-MD frames the "
                  "students disagreed on most (labeled by the teacher). Same held-out "
                  "molecules in every round.", "",
                  "| round | preset | force R² | force MAE (eV/Å) | energy MAE (meV/atom) | "
                  "NVE drift (%/100 steps) | NVT stable | relaxed RMSD (Å) |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for round_index, preset, m in round_metrics(rounds):
            lines.append(
                f"| {round_index} | {preset} | {fmt(m['force_r2'])} | "
                f"{fmt(m['force_mae'])} | {_milli(m.get('energy_mae_per_atom'))} | "
                f"{_g(m.get('nve_drift_percent_per_100_steps_max'))} | "
                f"{_g(m.get('nvt_stable_fraction'))} | "
                f"{_g(m.get('optimisation_rmsd_mean_A'))} |")
    write_text(path, "\n".join(lines) + "\n")
    return path


def _milli(value) -> str:
    return "n/a" if value is None else f"{1000 * value:.1f}"


def _g(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"
