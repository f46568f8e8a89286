"""Training-test data: small molecules labelled by a random float64 student (the teacher).

A teacher of the student's own architecture is something a student can fit exactly, so a
test can demand that training actually learns. Importable by subprocesses (resume, DDP).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule

from mlff_distiller import keys
from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.data.graph import atoms_to_graph
from mlff_distiller.data.splits import split_dataset
from mlff_distiller.models.painn import PaiNNConfig
from mlff_distiller.models.presets import build_student
from mlff_distiller.teachers.base import Labels

TEACHER_CONFIG = PaiNNConfig(hidden=16, n_interactions=2, n_rbf=8, cutoff=4.0,
                             elements=(1, 6, 8))
STUDENT_CONFIG = PaiNNConfig(hidden=16, n_interactions=2, n_rbf=8, cutoff=4.0,
                             elements=(1, 6, 8))
MOLECULES = ("H2O", "CH4", "CH3OH", "C2H6", "CO2", "HCOOH")


def make_teacher(seed: int = 123):
    """A random float64 student with chemistry-like references and O(1) eV/Å forces."""
    teacher = build_student(TEACHER_CONFIG, seed=seed).double().eval()
    with torch.no_grad():
        teacher.energy_model.element_energies.copy_(
            torch.tensor([-13.6, -1030.0, -2040.0], dtype=torch.float64))
        teacher.energy_model.energy_scale.fill_(3.0)
    return teacher


def teacher_labels(teacher, structures: list[Atoms], hessian_rows: int = 0,
                   seed: int = 0) -> list[Labels]:
    """Energy, forces (and ``hessian_rows`` random Hessian rows by autograd) per structure."""
    out = []
    rng = np.random.default_rng(seed)
    for atoms in structures:
        graph = atoms_to_graph(atoms, teacher.cutoff, dtype=torch.float64)
        positions = graph[keys.POSITIONS].requires_grad_(True)
        energy = teacher.energy_model(graph)
        (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=hessian_rows > 0)
        labels = Labels(energy=float(energy.item()), forces=-grad.detach().numpy())
        if hessian_rows:
            n = 3 * len(atoms)
            index = np.sort(rng.choice(n, min(hessian_rows, n), replace=False))
            rows = [torch.autograd.grad(grad.reshape(-1)[c], positions, retain_graph=True)[0]
                    .reshape(-1).numpy() for c in index]
            labels.hessian_row_index, labels.hessian_rows = index, np.stack(rows)
        out.append(labels)
    return out


def rattled(n_per_molecule: int = 6, seed: int = 0, names=MOLECULES,
            amplitude: float = 0.1) -> tuple[list[Atoms], list[int]]:
    rng = np.random.default_rng(seed)
    structures, ids = [], []
    for mol_id, name in enumerate(names):
        for _ in range(n_per_molecule):
            atoms = molecule(name)
            atoms.positions += rng.normal(0, amplitude, atoms.positions.shape)
            structures.append(atoms)
            ids.append(mol_id)
    return structures, ids


def make_dataset(path: Path, n_per_molecule: int = 6, seed: int = 0, hessian_rows: int = 0,
                 names=MOLECULES, val_molecules=(2,)) -> Path:
    """A labelled dataset with a molecule-level train/val split (val = ``val_molecules``)."""
    structures, ids = rattled(n_per_molecule, seed, names)
    labels = teacher_labels(make_teacher(), structures, hessian_rows, seed)
    write_dataset(path, structures, labels, ids, metadata={"teacher": "test:random-painn"})
    train = sorted(set(ids) - set(val_molecules))
    split_dataset(path, ratios=None, train_ids=train, val_ids=list(val_molecules), test_ids=[])
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank: int, world: int, port: int, data: str, out: str, train: dict) -> None:
    """One process of a gloo data-parallel run (``torch.multiprocessing.spawn`` target)."""
    import os

    import torch.distributed as dist

    from mlff_distiller.training.config import TrainConfig
    from mlff_distiller.training.trainer import train_student

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train_student(data, STUDENT_CONFIG, TrainConfig.from_dict(train), out)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
