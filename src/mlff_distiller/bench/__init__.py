"""bench stage: latency / throughput of students (every export format) and the teacher."""

from mlff_distiller.bench.runner import FORMATS, benchmark

__all__ = ["FORMATS", "benchmark"]
