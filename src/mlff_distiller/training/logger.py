"""Run logs: a rich progress bar with live metrics, CSV + JSON per validation, TensorBoard.

Only the main process writes. The CSV and JSON are rewritten (atomically) from the full
history at each validation, so a resumed run's logs continue seamlessly.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mlff_distiller.errors import InputError
from mlff_distiller.fileio import write_json, write_text
from mlff_distiller.training.config import TrainConfig


class RunLogger:
    """Progress + logs of one training run in ``out_dir``."""

    def __init__(self, out_dir: Path, active: bool, config: TrainConfig, total_steps: int,
                 resume: bool = False) -> None:
        self.active = active
        self.csv_path = out_dir / "log.csv"
        self.json_path = out_dir / "log.json"
        self.total_steps = total_steps
        self._progress = None
        self._task = None
        self._writer = None
        self._last_val = ""
        if not active:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError(
                    "tensorboard=true needs the 'tensorboard' package; install it with "
                    "`pip install tensorboard -c constraints.txt` or set tensorboard=false"
                ) from None
            self._writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
        if config.progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
                transient=False,
            )

    def start(self, step: int) -> None:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total_steps, completed=step)

    def advance(self, step: int, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step,
                                  description=f"loss {loss:.4g} {self._last_val}")

    def log(self, history: list[dict]) -> None:
        """Write the per-validation history; show the latest validation metrics."""
        if not self.active:
            return
        entry = history[-1]
        self._last_val = (f"| val F-MAE {entry['val_force_mae']:.4g} eV/Å  "
                          f"E-MAE {1000 * entry['val_energy_mae_per_atom']:.3g} meV/atom")
        columns: list[str] = []
        for row in history:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        write_text(self.csv_path, buffer.getvalue())
        write_json(self.json_path, history)
        if self._writer is not None:
            for key, value in entry.items():
                if key not in ("epoch", "step") and isinstance(value, int | float):
                    self._writer.add_scalar(key, value, entry["step"])
            self._writer.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._writer is not None:
            self._writer.close()
