"""On-policy augmentation: label the frames the students themselves visit and get wrong.

One round: short Langevin MD driven by the first (largest) student from one training
structure per training molecule; every ``stride`` steps the frame is scored by how much the
students disagree (max over atoms of the largest pairwise force difference, eV/Å; with a
single student, the largest change of an atom's force since the previous candidate); the
``frames_per_molecule`` highest-scoring frames of each start are labeled by the teacher and
appended to the dataset with their molecule's id. The splits are carried over unchanged
(explicit molecule lists), so validation and test molecules never see on-policy frames and
hold-out metrics stay comparable across rounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms, units
from rich.console import Console

from mlff_distiller.errors import InputError
from mlff_distiller.md.analysis import min_distance as closest_pair


def disagreement(forces: list[np.ndarray], previous: np.ndarray | None = None) -> float:
    """Uncertainty score of a frame in eV/Å.

    With two or more force sets (N, 3): max_i max_{a<b} |F_a,i - F_b,i|. With one:
    max_i |F_i - F_i(previous frame)| (0 for the first frame).
    """
    if len(forces) >= 2:
        return max(float(np.linalg.norm(fa - fb, axis=1).max())
                   for k, fa in enumerate(forces) for fb in forces[k + 1:])
    if previous is None:
        return 0.0
    return float(np.linalg.norm(forces[0] - previous, axis=1).max())


def sample_frames(start: Atoms, calculators: list, steps: int, stride: int,
                  temperature_K: float, timestep_fs: float, min_distance: float,
                  keep: int, seed: int) -> list[Atoms]:
    """Run Langevin MD with ``calculators[0]`` and return the ``keep`` most uncertain frames
    (stops early, keeping earlier frames, when two atoms come closer than ``min_distance``)."""
    from ase.constraints import FixCom
    from ase.md import velocitydistribution
    from ase.md.langevin import Langevin

    from mlff_distiller.md.velocities import maxwell_boltzmann

    atoms = start.copy()
    atoms.calc = calculators[0]
    maxwell_boltzmann(atoms, temperature_K, np.random.default_rng(seed))
    velocitydistribution.Stationary(atoms)
    atoms.set_constraint(FixCom())  # as md.runs: the thermostat's noise must not move it
    dynamics = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K,
                        friction=0.01 / units.fs, fixcm=False,
                        rng=np.random.default_rng(seed + 1))
    scored: list[tuple[float, Atoms]] = []
    previous = None
    for _ in range(max(steps // stride, 1)):
        dynamics.run(stride)
        positions = atoms.get_positions()
        if closest_pair(positions) < min_distance:
            break
        frame = Atoms(numbers=atoms.numbers, positions=positions, cell=atoms.cell, pbc=atoms.pbc)
        forces = [atoms.get_forces(apply_constraint=False)]  # as the others': unconstrained
        for calc in calculators[1:]:
            frame.calc = calc
            forces.append(frame.get_forces())
        frame.calc = None
        scored.append((disagreement(forces, previous), frame))
        previous = forces[0]
    scored.sort(key=lambda item: -item[0])
    kept = []
    for score, frame in scored[:keep]:
        frame.info["onpolicy_score"] = score
        kept.append(frame)
    return kept


def augment_dataset(config, dataset: Path, students: dict[str, Path], stage_dir: Path,
                    round_index: int, console: Console | None = None) -> dict:
    """One on-policy round; writes ``stage_dir/data.h5`` (old + new frames, old splits)."""
    import ase.io
    from rich.progress import Progress

    from mlff_distiller.data.dataset import LabeledDataset
    from mlff_distiller.data.labeling import label_structures
    from mlff_distiller.data.schema import copy_dataset, open_dataset, read_metadata
    from mlff_distiller.data.splits import split_dataset
    from mlff_distiller.fileio import atomic_path
    from mlff_distiller.md.calculator import StudentCalculator

    options = config.onpolicy
    calculators = [StudentCalculator(path) for path in students.values()]
    train = LabeledDataset(dataset, split="train")
    rng = np.random.default_rng(options.seed + round_index)
    molecules = np.unique(train.molecule_ids)
    chosen = rng.permutation(molecules)[: options.molecules]
    pool = stage_dir / "pool.extxyz"
    if not pool.exists():
        frames = []
        with Progress(console=console or Console(stderr=True), transient=True) as progress:
            task = progress.add_task(f"on-policy round {round_index}: student MD",
                                     total=len(chosen))
            for k, mol in enumerate(chosen):
                start = train.atoms(int(np.flatnonzero(train.molecule_ids == mol)[0]))
                for frame in sample_frames(start, calculators, options.md_steps, options.stride,
                                           options.temperature_K, options.timestep_fs,
                                           options.min_distance_A, options.frames_per_molecule,
                                           seed=options.seed + 1000 * round_index + k):
                    frame.info.update({"molecule_id": int(mol), "method": "onpolicy",
                                       "round": round_index})
                    frames.append(frame)
                progress.advance(task)
        if not frames:
            raise InputError(f"on-policy round {round_index}: no usable frames (every student "
                             "MD exploded at once); lower onpolicy.temperature_K")
        with atomic_path(pool) as tmp:
            ase.io.write(tmp, frames, format="extxyz")
    new = stage_dir / "new.h5"
    summary = label_structures(pool, config.teacher, new, teacher_weights=config.teacher_weights,
                               device=config.device, progress=True,
                               **{"workers": 1, **config.label})
    out = stage_dir / "data.h5"
    with open_dataset(dataset) as old_file, open_dataset(new) as new_file:
        metadata = read_metadata(old_file)
        splits = {name: old_file["splits"][name][:].tolist() for name in ("train", "val", "test")
                  if "splits" in old_file and name in old_file["splits"]}
        metadata.pop("content_hash", None)
        recipe = metadata.get("recipe") if isinstance(metadata.get("recipe"), dict) else {}
        metadata["recipe"] = {**recipe, f"onpolicy_round_{round_index}": {
            "frames": summary.get("n_labeled"), "options": options.__dict__}}
        with atomic_path(out) as tmp:
            copy_dataset([old_file, new_file], tmp, metadata, molecule_offsets=[0, 0])
    counts = split_dataset(out, ratios=None, train_ids=splits.get("train"),
                           val_ids=splits.get("val"), test_ids=splits.get("test"), overwrite=True)
    return {"dataset": str(out), "new_frames": int(summary.get("n_labeled", 0)),
            "label_summary": summary, "splits": counts}
