"""benchmarks/gpu_inference.py runs end to end (on the CPU here; CI has no GPU), its fixed-
input variants compute what the eager model does, and bad arguments are one-line errors."""

from __future__ import annotations

import json

from tests.bench.scripts import run_benchmark


def _run(*args: str):
    return run_benchmark("gpu_inference.py", *args)


def test_gpu_benchmark_smoke_run_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = _run("--device", "cpu", "--presets", "ultra-tiny", "--batches", "1,3",
                "--repeats", "3", "--skip",
                "compiled,compiled_calculator,compiled_md,compiled_ase_md",
                "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["n_atoms"] == 50
    (row,) = result["latency"]
    variants = row["variants"]
    assert set(variants) == {"calculator", "calculator_md", "fast"}  # no CUDA graph on a CPU
    assert all(v["median_ms"] > 0 and "error" not in v for v in variants.values())
    assert variants["fast"]["max_abs_dforces"] < 1e-5
    batches = [r["batch"] for r in result["throughput"]]
    assert batches == [1, 3]
    assert all(r["atoms_per_s"] > 0 for r in result["throughput"])


def test_gpu_benchmark_bad_arguments_are_parser_errors():
    for args, message in ((["--device", "cpu", "--batches", "0"], "--batches '0'"),
                          (["--device", "cpu", "--skip", "warp"], "--skip: unknown ['warp']"),
                          (["--device", "cpu", "--presets", "huge"], "unknown ['huge']")):
        done = _run(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr[-500:])


def test_gpu_benchmark_without_cuda_says_so():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    done = _run("--device", "cuda")
    assert done.returncode == 2 and "sees no CUDA device" in done.stderr, done.stderr[-500:]
