"""Helpers for spawned worker processes (structure generation, labeling)."""

from __future__ import annotations

import os
import threading
import time


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of ``workers`` processes sharing this machine's cores (>= 1)."""
    return max(1, (os.cpu_count() or 1) // workers)


def exit_with_parent() -> None:
    """End this worker process once its parent is gone.

    Call it in a worker's initializer: a daemon thread polls the parent id every second, so a
    parent killed outright (``kill -9``) does not leave its workers running.
    """
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
