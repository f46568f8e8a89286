"""Where teacher labeling runs: in-process, local worker processes, or Ray actors.

Every executor holds one teacher instance per worker (built from a spec string with
``teachers.load_teacher`` or a pickled ``Teacher``) and maps chunks of structures to
``Labels`` / ``LabelFailure`` lists. Results come back as they finish; the caller writes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

from mlff_distiller.errors import InputError
from mlff_distiller.processes import exit_with_parent, threads_per_worker

Chunk = tuple[int, list, int]  # (chunk number, structures, seed of its first structure)


@dataclass(frozen=True)
class TeacherInfo:
    name: str
    version: str
    supported_elements: frozenset[int] | None


def build_teacher(teacher, weights: str | None = None, device: str = "cpu"):
    """A ``Teacher`` from a spec string (``teachers.load_teacher``) or the instance itself."""
    from mlff_distiller.teachers.base import Teacher

    if isinstance(teacher, Teacher):
        return teacher
    if not isinstance(teacher, str):
        raise InputError(f"teacher: expected a spec string (e.g. 'sevennet', 'xtb') or a "
                         f"Teacher, got {type(teacher).__name__}")
    from mlff_distiller.teachers import load_teacher

    return load_teacher(teacher, weights=weights, device=device)


def describe(teacher) -> TeacherInfo:
    elements = teacher.supported_elements
    return TeacherInfo(str(teacher.name), str(teacher.version),
                       None if elements is None else frozenset(int(z) for z in elements))


# --- local worker processes --------------------------------------------------------------
_WORKER_TEACHER = None
_WORKER_BARRIER = None


def _init_worker(teacher, weights, device, threads: int, barrier) -> None:
    global _WORKER_TEACHER, _WORKER_BARRIER
    import torch

    torch.set_num_threads(max(1, threads))
    _WORKER_BARRIER = barrier
    exit_with_parent()
    try:
        _WORKER_TEACHER = build_teacher(teacher, weights, device)
    except Exception as exc:  # noqa: BLE001 - re-raised with its message by _worker_ready
        _WORKER_TEACHER = exc


def _worker_ready(timeout: float) -> TeacherInfo:
    # blocks until every worker holds a task, forcing all of them to start and load a teacher
    _WORKER_BARRIER.wait(timeout)
    if isinstance(_WORKER_TEACHER, Exception):
        raise _WORKER_TEACHER
    return describe(_WORKER_TEACHER)


def _worker_label(structures: list, hessian_rows: int, seed: int) -> list:
    return _WORKER_TEACHER.label(structures, hessian_rows=hessian_rows, seed=seed)


class SerialExecutor:
    """Labels in this process."""

    backend = "serial"

    def __init__(self, teacher, weights=None, device="cpu") -> None:
        self.teacher = build_teacher(teacher, weights, device)
        self.n_workers = 1

    def describe(self) -> TeacherInfo:
        return describe(self.teacher)

    def run(self, chunks: Iterator[Chunk], hessian_rows: int) -> Iterator[tuple[int, list]]:
        for number, structures, seed in chunks:
            yield number, self.teacher.label(structures, hessian_rows=hessian_rows, seed=seed)

    def close(self) -> None:
        pass


class ProcessExecutor:
    """``workers`` spawned processes, each with its own teacher and 1+ torch threads."""

    backend = "processes"

    def __init__(self, teacher, workers: int, weights=None, device="cpu") -> None:
        import multiprocessing

        threads = threads_per_worker(workers)
        self.n_workers = workers
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(teacher, weights, device, threads, context.Barrier(workers)))

    def describe(self, timeout: float = 1800.0) -> TeacherInfo:
        """Start every worker (each loads its teacher) and describe the teacher."""
        futures = [self.pool.submit(_worker_ready, timeout) for _ in range(self.n_workers)]
        return [f.result() for f in futures][0]

    def run(self, chunks: Iterator[Chunk], hessian_rows: int) -> Iterator[tuple[int, list]]:
        pending = {}
        chunks = iter(chunks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.n_workers:
                try:
                    number, structures, seed = next(chunks)
                except StopIteration:
                    exhausted = True
                    break
                pending[self.pool.submit(_worker_label, structures, hessian_rows, seed)] = number
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """One teacher actor per GPU (``num_gpus=1``) when the cluster has GPUs, else CPU actors
    (``workers`` of them, or one per cluster CPU when ``workers`` is 1)."""

    backend = "ray"

    def __init__(self, teacher, address: str, workers: int, weights=None) -> None:
        from mlff_distiller.teachers.base import require

        ray = require("ray", "cluster", "labeling on a Ray cluster (--ray-address)")
        self.ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=max(1, workers), include_dashboard=False,
                         log_to_driver=False)
            else:
                try:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise InputError(f"--ray-address {address}: cannot connect to a Ray "
                                     f"cluster ({exc}); start one with `ray start --head` or "
                                     "use 'local'") from None
            self._owns_ray = True
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus > 0:
            n, options, device = gpus, {"num_gpus": 1, "num_cpus": 1}, "cuda"
        else:
            n = workers if workers > 1 else max(1, int(resources.get("CPU", 1)))
            options, device = {"num_cpus": 1}, "cpu"
        actor_cls = ray.remote(_TeacherActor).options(**options)
        self.actors = [actor_cls.remote(teacher, weights, device) for _ in range(n)]
        self.n_workers = n

    def describe(self) -> TeacherInfo:
        return self.ray.get(self.actors[0].describe.remote())

    def run(self, chunks: Iterator[Chunk], hessian_rows: int) -> Iterator[tuple[int, list]]:
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        numbers: dict[int, int] = {}
        order = 0
        for number, structures, seed in chunks:
            numbers[order] = number
            order += 1
            pool.submit(lambda a, v: a.label.remote(*v), (structures, hessian_rows, seed))
            while not pool.has_free() and pool.has_next():
                yield self._next(pool, numbers)
        while pool.has_next():
            yield self._next(pool, numbers)

    @staticmethod
    def _next(pool, numbers: dict[int, int]) -> tuple[int, list]:
        # ActorPool returns results in submission order; map back to chunk numbers
        index = min(numbers)
        return numbers.pop(index), pool.get_next()

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self._owns_ray:
            self.ray.shutdown()


class _TeacherActor:
    def __init__(self, teacher, weights, device) -> None:
        self.teacher = build_teacher(teacher, weights, device)

    def describe(self) -> TeacherInfo:
        return describe(self.teacher)

    def label(self, structures: Sequence, hessian_rows: int, seed: int) -> list:
        return self.teacher.label(structures, hessian_rows=hessian_rows, seed=seed)


def make_executor(teacher, workers: int = 1, ray_address: str | None = None,
                  weights: str | None = None, device: str = "cpu"):
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if ray_address:
        return RayExecutor(teacher, ray_address, workers, weights)
    if workers == 1:
        return SerialExecutor(teacher, weights, device)
    return ProcessExecutor(teacher, workers, weights, device)
