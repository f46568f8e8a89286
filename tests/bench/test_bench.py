"""The benchmark writes JSON in the prototype's shape and a plot; it never asserts on time."""

from __future__ import annotations

import json

import pytest

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
