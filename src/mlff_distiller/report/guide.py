"""The model-selection guide: several students' cards side by side, and which to pick.

For each judged use the guide names the smallest student (fewest parameters; the more
accurate first among equal sizes) whose card recommends it, so the choice follows the
measured numbers, not model size alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from mlff_distiller.errors import InputError
from mlff_distiller.evaluation.evaluate import default_out_dir
from mlff_distiller.fileio import write_json, write_text
from mlff_distiller.report.render import to_html, to_markdown


def resolve_card(entry: str | os.PathLike) -> dict:
    """A card dict from a ``card.json``, a card folder, or a student checkpoint (whose card
    is written first, from the results found beside it)."""
    p = Path(entry)
    if p.is_dir():
        p = p / "card.json"
    if p.suffix == ".json":
        if not p.is_file():
            raise InputError(f"{entry}: no card.json there; write it with mlffd card STUDENT")
        return json.loads(p.read_text())
    if not p.is_file():
        raise InputError(f"{entry}: not a student checkpoint, card folder or card.json")
    from mlff_distiller.report.card import write_card

    paths = write_card(p, out_dir=default_out_dir(p, "card"))
    return json.loads(paths["json"].read_text())


def write_selection_guide(entries: Sequence[str | os.PathLike],
                          out_dir: str | os.PathLike = "model_selection") -> dict[str, Path]:
    """Compare students (cards, card folders or checkpoints); writes ``guide.md``,
    ``guide.html`` and ``guide.json`` into ``out_dir`` and returns their paths."""
    if len(entries) < 2:
        raise InputError("--compare needs at least two students (or their cards)")
    cards = sorted((resolve_card(e) for e in entries), key=_size_then_accuracy)
    names = [c["model"]["name"] for c in cards]
    if len(set(names)) != len(names):
        names = [f"{c['model']['name']} ({Path(c['model']['path']).parent.name})" for c in cards]
    rows = []
    for name, c in zip(names, cards, strict=True):
        ev, md, sp = c.get("evaluation") or {}, c.get("md") or {}, c.get("speed") or {}
        rows.append([name, c["model"]["preset"], c["model"]["parameters"],
                     c["model"]["file_size_bytes"], ev.get("force_mae"), ev.get("force_r2"),
                     None if ev.get("energy_mae_per_atom") is None
                     else 1000 * ev["energy_mae_per_atom"],
                     md.get("nve_drift_percent_per_100_steps_max"),
                     md.get("nvt_stable_fraction"), md.get("optimisation_rmsd_mean_A"),
                     sp.get("latency_ms_batch1"), sp.get("peak_throughput"),
                     sp.get("teacher_speedup")])
    picks = []
    for use in [u["use"] for u in cards[0]["uses"]]:
        ok = [n for n, c in zip(names, cards, strict=True)
              if _status(c, use) == "recommended"]
        unknown = [n for n, c in zip(names, cards, strict=True)
                   if _status(c, use) == "not assessed"]
        if ok:
            text = f"{use}: {ok[0]} (smallest that passes; also: {', '.join(ok[1:]) or '-'})"
        elif unknown:
            text = f"{use}: no student passes; not assessed for {', '.join(unknown)}"
        else:
            text = f"{use}: none of the compared students passes"
        picks.append(text)
    accurate = [(ev["force_mae"], n) for n, c in zip(names, cards, strict=True)
                if (ev := c.get("evaluation")) and ev.get("force_mae") is not None]
    if accurate:
        picks.append(f"Most accurate forces: {min(accurate)[1]} "
                     f"(force MAE {min(accurate)[0]:.3g} eV/Å)")
    fast = [(sp["peak_throughput"], n) for n, c in zip(names, cards, strict=True)
            if (sp := c.get("speed")) and sp.get("peak_throughput") is not None]
    if fast:
        picks.append(f"Highest throughput: {max(fast)[1]} ({max(fast)[0]:,.0f} samples/s)")
    blocks = [
        ("h1", "Model-selection guide"),
        ("p", f"{len(cards)} students, smallest first. Picks come from each card's judged uses "
              "(thresholds in the cards)."),
        ("h2", "Which student for which job"),
        ("list", picks),
        ("h2", "Side by side"),
        ("table", ["student", "preset", "parameters", "file bytes", "force MAE (eV/Å)",
                   "force R²", "energy MAE (meV/atom)", "NVE drift %/100 steps",
                   "NVT stable", "opt RMSD (Å)", "latency bs=1 (ms)", "peak samples/s",
                   "speed-up vs teacher"], rows),
        ("h2", "Judged uses per student"),
        ("table", ["use"] + names,
         [[u["use"]] + [_status(c, u["use"]) for c in cards] for u in cards[0]["uses"]]),
    ]
    out = Path(out_dir)
    paths = {"markdown": out / "guide.md", "html": out / "guide.html", "json": out / "guide.json"}
    write_text(paths["markdown"], to_markdown(blocks, out))
    write_text(paths["html"], to_html(blocks, "Model-selection guide"))
    write_json(paths["json"], {"students": names, "picks": picks, "table": rows,
                               "cards": [c["model"]["path"] for c in cards]})
    return paths


def _size_then_accuracy(card: dict) -> tuple[int, float]:
    mae = (card.get("evaluation") or {}).get("force_mae")
    return card["model"]["parameters"], float("inf") if mae is None else mae


def _status(card: dict, use: str) -> str:
    return next((u["status"] for u in card["uses"] if u["use"] == use), "not assessed")
