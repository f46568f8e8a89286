"""benchmarks/gpu_compile_paths.py runs end to end on the CPU (CI has no GPU): each variant
in its own process, CUDA-only ones recorded as such, bad arguments one-line errors."""

from __future__ import annotations

import json

from tests.bench.scripts import run_benchmark


def _run(*args: str):
    return run_benchmark("gpu_compile_paths.py", *args)


def test_smoke_run_on_cpu(tmp_path):
    out = tmp_path / "paths.json"
    done = _run("--device", "cpu", "--preset", "ultra-tiny", "--variants",
                "eager,eager_graph", "--repeats", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    eager, graph = result["variants"]
    assert eager["variant"] == "eager" and eager["median_ms"] > 0
    assert eager["max_abs_dforces"] < 1e-5
    assert graph == {"variant": "eager_graph", "error": "needs a CUDA device"}


def test_bad_arguments_are_parser_errors():
    for args, message in ((["--variants", "warp"], "--variants 'warp'"),
                          (["--repeats", "0"], "--repeats 0"),
                          (["--preset", "huge"], "invalid choice: 'huge'")):
        done = _run("--device", "cpu", *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr[-500:])
