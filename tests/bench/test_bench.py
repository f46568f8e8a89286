"""The benchmark writes JSON in the prototype's shape and a plot; it never asserts on time."""

from __future__ import annotations

import json

import pytest
import torch

from mlff_distiller.bench import benchmark
from mlff_distiller.models.checkpoint import save_student
from tests.conftest import perturbed_student


def test_benchmark_writes_json_plot_and_teacher_ratio(tmp_path):
    path = tmp_path / "ut.safetensors"
    save_student(perturbed_student("ultra-tiny", elements=(1, 6, 8)).float(), path)
    r = benchmark([path], teacher="ase:ase.calculators.emt:EMT", formats=["eager", "torchscript"],
                  batch_sizes=[1, 3], threads=[1], repeats=2, out_dir=tmp_path / "b")
    stored = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert (tmp_path / "b" / "benchmark.png").stat().st_size > 1000
    assert {run["format"] for run in stored["results"]} == {"eager", "torchscript"}
    for run in stored["results"]:
        assert [e["batch_size"] for e in run["benchmarks"]] == [1, 3]
        for e in run["benchmarks"]:
            assert e["latency_ms"] > 0 and e["neighbor_list_ms"] > 0
            assert e["throughput_atoms_per_sec"] == pytest.approx(
                e["throughput_samples_per_sec"] * e["n_atoms"] / e["batch_size"])
            assert e["speedup_vs_teacher"] > 0
        assert set(run["summary"]) >= {"peak_throughput", "optimal_batch_size",
                                       "memory_per_model_mb", "teacher_speedup"}
    assert stored["teacher"]["available"]
    card = json.loads((tmp_path / "b" / "ut.benchmark.json").read_text())
    assert set(card) >= {"model", "device", "benchmarks", "summary"}
    assert r["exports"]["ut/torchscript"]["parity"]["passed"]


def _batch_graph(student, n: int):
    from mlff_distiller.data.graph import atoms_to_graph
    from mlff_distiller.export.quantize_report import md_molecule

    molecule = md_molecule(student.elements)
    structures = []
    for k in range(n):
        atoms = molecule.copy()
        atoms.rattle(0.03, seed=k)
        structures.append(atoms)
    return molecule, atoms_to_graph(structures, student.cutoff, dtype=torch.float32)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_fast_formats_predict_what_the_model_does(compiled, tmp_path):
    """``fast`` / ``compiled`` time the calculator's path; on a batch of structures (several
    per chunk, or one per compiled call) it gives the eager model's energies and forces."""
    from mlff_distiller import keys
    from mlff_distiller.bench.runner import _prepare

    student = perturbed_student("ultra-tiny", elements=(1, 6, 8)).float().eval()
    molecule, graph = _batch_graph(student, 5)
    runners, info = _prepare(student, "compiled" if compiled else "fast", tmp_path, molecule)
    out = runners(1)(graph)
    ref = student(graph, compute_forces=True)
    torch.testing.assert_close(out[keys.ENERGY], ref[keys.ENERGY].detach(), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[keys.FORCES], ref[keys.FORCES].detach(), atol=1e-5, rtol=0)
    if compiled:
        assert info["compile_seconds"] > 0 and info["loaded_from_cache"] is False
    else:
        assert info is None


def test_benchmark_times_the_fast_path(tmp_path):
    path = tmp_path / "ut.safetensors"
    save_student(perturbed_student("ultra-tiny", elements=(1, 6, 8)).float(), path)
    r = benchmark([path], formats=["eager", "fast"], batch_sizes=[1, 4], threads=[1],
                  repeats=2, out_dir=tmp_path / "b")
    fast = [run for run in r["results"] if run["format"] == "fast"]
    assert len(fast) == 1 and [e["batch_size"] for e in fast[0]["benchmarks"]] == [1, 4]
    assert all(e["latency_ms"] > 0 for e in fast[0]["benchmarks"])


def test_unavailable_teacher_is_reported_not_fatal(tmp_path):
    path = tmp_path / "ut.safetensors"
    save_student(perturbed_student("ultra-tiny", elements=(1, 6, 8)).float(), path)
    r = benchmark([path], teacher="no-such-teacher", formats=["eager"], batch_sizes=[1],
                  threads=[1], repeats=1, out_dir=tmp_path / "b")
    assert r["teacher"]["available"] is False and r["teacher"]["reason"]


def test_bad_format_is_an_input_error(tmp_path):
    from mlff_distiller.errors import InputError

    with pytest.raises(InputError, match="unknown benchmark format"):
        benchmark(["x.safetensors"], formats=["tensorrt"], out_dir=tmp_path)


@pytest.mark.slow
def test_compiled_benchmark_reaches_the_card_with_its_build(tmp_path):
    """A student timed only ``compiled``: its per-model JSON carries the program's build
    (or cache load) time, and the model card built from it tells how to run the student
    that fast (``StudentCalculator(path, compile=True)``) and what the build cost."""
    from mlff_distiller.report.card import write_card
    from mlff_distiller.report.render import fmt

    path = tmp_path / "ut.safetensors"
    save_student(perturbed_student("ultra-tiny", elements=(1, 6, 8)).float(), path)
    r = benchmark([path], formats=["compiled"], batch_sizes=[1, 2], threads=[1], repeats=1,
                  out_dir=tmp_path / "b")
    built = r["exports"]["ut/compiled"]
    per_model = json.loads((tmp_path / "b" / "ut.benchmark.json").read_text())
    assert per_model["format"] == "compiled" and "(compiled, 1 threads)" in per_model["device"]
    assert per_model["compile_seconds"] == built["compile_seconds"] > 0
    assert per_model["loaded_from_cache"] is built["loaded_from_cache"]
    text = write_card(path, bench_json=tmp_path / "b" / "ut.benchmark.json",
                      out_dir=tmp_path / "card")["markdown"].read_text()
    speed = text.split("## Speed", 1)[1]
    how = "loaded from the cache" if built["loaded_from_cache"] else "built"
    assert "`StudentCalculator(path, compile=True)`" in speed
    assert f"Here the program was {how} in {fmt(built['compile_seconds'])} s." in speed


def test_fast_benchmark_card_names_the_calculator(tmp_path):
    """The card of a student whose fastest timed format is ``fast`` names the calculator's
    default path and no build time."""
    from mlff_distiller.report.card import write_card

    path = tmp_path / "ut.safetensors"
    save_student(perturbed_student("ultra-tiny", elements=(1, 6, 8)).float(), path)
    benchmark([path], formats=["fast"], batch_sizes=[1], threads=[1], repeats=1,
              out_dir=tmp_path / "b")
    per_model = json.loads((tmp_path / "b" / "ut.benchmark.json").read_text())
    assert "compile_seconds" not in per_model
    speed = write_card(path, bench_json=tmp_path / "b" / "ut.benchmark.json",
                       out_dir=tmp_path / "card")["markdown"].read_text().split("## Speed")[1]
    assert "`StudentCalculator(path)`, the ASE calculator's default path" in speed
    assert "program was" not in speed
