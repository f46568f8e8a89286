"""Model cards and the selection guide render, parse, and carry the measured numbers."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from ase.build import molecule

from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.errors import InputError
from mlff_distiller.evaluation.evaluate import evaluate_student
from mlff_distiller.md.runs import MDConfig
from mlff_distiller.md.validate import validate_md
from mlff_distiller.models.checkpoint import save_student
from mlff_distiller.models.painn import PaiNNConfig
from mlff_distiller.models.presets import build_student
from mlff_distiller.report.card import write_card
from mlff_distiller.report.guide import write_selection_guide
from mlff_distiller.report.render import fmt
from mlff_distiller.report.uses import UseThresholds, derive_uses
from mlff_distiller.teachers.base import Labels
from mlff_distiller.testing import predict

CFG = PaiNNConfig(hidden=8, n_interactions=1, n_rbf=4, cutoff=4.0, elements=(1, 6, 8))
BENCH = {"model": "s", "device": "cpu",
         "benchmarks": [{"batch_size": 1, "latency_ms": 1.25, "throughput_samples_per_sec": 800.0},
                        {"batch_size": 8, "latency_ms": 4.5,
                         "throughput_samples_per_sec": 1777.7}],
         "summary": {"peak_throughput": 1777.7, "optimal_batch_size": 8,
                     "memory_per_model_mb": 0.4, "teacher_speedup": 42.0}}


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.imgs, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("card")
    model = build_student(CFG, seed=1).double()
    teacher = build_student(CFG, seed=2).double()
    student = save_student(model, tmp / "small.safetensors",
                           metadata={"teacher": "toy-teacher", "dataset_hash": "abc",
                                     "metrics": {"val_force_mae": 0.123}, "step": 7})
    structures = [molecule(n) for n in ("H2O", "CH4", "CH3OH", "CH3OH")]
    labels = [Labels(energy=float(p["energy"][0]), forces=p["forces"])
              for p in (predict(teacher, a) for a in structures)]
    data = write_dataset(tmp / "d.h5", structures, labels, metadata={"teacher": "toy-teacher"})
    ev = evaluate_student(student, data, split="all", out_dir=tmp / "small_eval")
    cfg = MDConfig(nve_steps=40, nvt_steps=40, sample_interval=5, temperature_K=20.0,
                   max_temperature_factor=50.0, temperature_window=10, max_opt_steps=20,
                   conformers=1)
    md = validate_md(student, [molecule("H2O")], teacher=None, config=cfg,
                     out_dir=tmp / "small_md")
    bench = tmp / "bench.json"
    bench.write_text(json.dumps(BENCH))
    torch.set_num_threads(threads)
    return tmp, student, ev, md, bench


def test_card_renders_and_holds_the_numbers(results):
    tmp, student, ev, md, bench = results
    paths = write_card(student, ev["files"]["json"], md["files"]["json"], bench,
                       out_dir=tmp / "card")
    text = paths["markdown"].read_text()
    page = paths["html"].read_text()
    parser = _Collect()
    parser.feed(page)
    parser.close()
    visible = " ".join(parser.text)
    for value in (ev["forces"]["mae"], ev["forces"]["rmse"], ev["forces"]["r2"],
                  md["molecules"][0]["nve"]["drift_percent_per_100_steps"]):
        assert fmt(value) in visible and fmt(value) in text
    assert "1,778" in visible and "1.25" in visible  # latency and throughput of the bench
    assert "42" in visible and "toy-teacher" in visible and "0.123" in visible
    assert {"table", "h1", "h2", "img"} <= set(parser.tags)
    assert len(parser.imgs) == 2 and all(s.startswith("data:image/png;base64,")
                                         for s in parser.imgs)
    assert "](small_eval/evaluation_all.png)" in text.replace("../", "")
    card = json.loads(paths["json"].read_text())
    assert card["model"]["parameters"] == ev["model"]["parameters"]
    assert {u["status"] for u in card["uses"]} <= {"recommended", "not recommended",
                                                    "not assessed"}


def test_card_without_results_says_not_measured(results):
    tmp, student, *_ = results
    paths = write_card(student, out_dir=tmp / "bare")  # default eval dir holds evaluation_all
    text = paths["markdown"].read_text()
    assert "Not measured (no evaluation JSON" in text and "Not assessed" in text


def test_card_refuses_results_of_another_model(results, tmp_path):
    _, _, ev, _, _ = results
    other = save_student(build_student(PaiNNConfig(hidden=4, n_interactions=1, n_rbf=2,
                                                   elements=(1, 6, 8))),
                         tmp_path / "other.safetensors")
    with pytest.raises(InputError, match="parameters"):
        write_card(other, ev["files"]["json"], out_dir=tmp_path)


def _ev(mae, r2=0.995, angle=5.0, e=0.002, rho=0.9):
    return {"forces": {"mae": mae, "r2": r2, "angular_error_mean_deg": angle},
            "energy": {"mae_per_atom": e}, "conformer_ranking": {"spearman_mean": rho}}


def _md(drift, stable=1.0, rmsd=0.05):
    return {"config": {"temperature_K": 300.0},
            "summary": {"nve_drift_percent_per_100_steps_max": drift, "drift_bar_percent": 0.1,
                        "nve_stable_fraction": 1.0, "nvt_stable_fraction": stable,
                        "nvt_simulated_fs": 1000.0,
                        "optimisation_rmsd_mean_A": rmsd,
                        "optimisation_student_converged_fraction": 1.0}}


def test_uses_follow_the_numbers():
    status = {u["use"]: u["status"] for u in derive_uses(_ev(0.04), _md(0.02), BENCH)}
    assert set(status.values()) == {"recommended"}
    bad = {u["use"]: u for u in derive_uses(_ev(0.3, r2=0.9), _md(0.5, stable=0.5), None)}
    md_use = bad["Molecular dynamics at 300 K"]
    assert md_use["status"] == "not recommended"
    assert "force MAE 0.3 eV/Å (fails <= 0.1 eV/Å)" in md_use["evidence"]
    assert "NVE drift (worst molecule) 0.5 %/100 steps (fails" in md_use["evidence"]
    assert bad["Force-critical work (vibrations, force matching)"]["status"] == "not recommended"
    assert bad["Replacing the teacher in high-throughput screening"]["status"] == \
        "not recommended"  # fails on accuracy even without a speed number
    # relaxed conformer order is optional evidence: absent it does not block, present it counts
    ranking = [u for u in derive_uses(_ev(0.04), None, None) if u["use"] == "Conformer ranking"]
    assert ranking[0]["status"] == "recommended"
    md = _md(0.02)
    md["summary"]["optimisation_conformer_order_preserved_fraction"] = 0.0
    ranking = [u for u in derive_uses(_ev(0.04), md, None) if u["use"] == "Conformer ranking"]
    assert ranking[0]["status"] == "not recommended"
    none = {u["use"]: u["status"] for u in derive_uses(None, None, None)}
    assert set(none.values()) == {"not assessed"}
    strict = UseThresholds(md_force_mae_eV_A=0.01)
    assert derive_uses(_ev(0.04), _md(0.02), BENCH, strict)[0]["status"] == "not recommended"


def test_selection_guide_picks_smallest_passing(tmp_path):
    cards = []
    for name, hidden, mae in (("big", 16, 0.03), ("small", 8, 0.05), ("tiny", 4, 0.4)):
        model = build_student(PaiNNConfig(hidden=hidden, n_interactions=1, n_rbf=4,
                                          elements=(1, 6, 8)), seed=0)
        path = save_student(model, tmp_path / f"{name}.safetensors")
        ev = {"model": {"parameters": None}, **_ev(mae)}
        ev_path = tmp_path / f"{name}_ev.json"
        ev_path.write_text(json.dumps(ev | {"dataset": {"name": "d", "split": "test",
                                                        "n_structures": 1, "n_atoms": 3,
                                                        "content_hash": "x"},
                                            "settings": {"min_force_for_angles": 0.1},
                                            "per_element": {}, "error_vs_force_magnitude": [
                                                {"lo": 8.0, "hi": None, "count": 2,
                                                 "mean_error": 0.5, "relative_error": 0.05}],
                                            "forces": ev["forces"] | {
                                                "rmse": mae, "max_abs_error": mae,
                                                "error_norm_percentiles": {},
                                                "angular_error_median_deg": 1.0},
                                            "energy": {"mae_per_atom": 0.002,
                                                       "mae_per_structure": 0.01},
                                            "conformer_ranking": {"spearman_mean": 0.9,
                                                                  "n_molecules": 2}}))
        md_path = tmp_path / f"{name}_md.json"
        md_path.write_text(json.dumps(_md(0.02) | {"molecules": [], "config": {
            "temperature_K": 300.0, "timestep_fs": 0.5, "nve_steps": 10, "nvt_steps": 10}}))
        cards.append(write_card(path, ev_path, md_path, out_dir=tmp_path / f"{name}_card")
                     ["json"])
    assert "| >= 8 | 2 | 0.5 | 0.05 |" in (tmp_path / "big_card" / "card.md").read_text()
    paths = write_selection_guide([tmp_path / "big_card", cards[1], cards[2]],
                                  out_dir=tmp_path / "guide")
    guide = json.loads(paths["json"].read_text())
    assert guide["students"] == ["tiny", "small", "big"]  # smallest first
    md_pick = next(p for p in guide["picks"] if p.startswith("Molecular dynamics"))
    assert md_pick.startswith("Molecular dynamics at 300 K: small (smallest that passes")
    assert any(p.startswith("Most accurate forces: big") for p in guide["picks"])
    parser = _Collect()
    parser.feed(paths["html"].read_text())
    assert "0.4" in " ".join(parser.text)
    with pytest.raises(InputError, match="at least two"):
        write_selection_guide([cards[0]], out_dir=tmp_path)
    assert np.isfinite(guide["table"][0][2])
