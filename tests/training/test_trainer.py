"""train_student learns the teacher, writes its files, and refuses bad input clearly."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from ase import Atoms

from mlff_distiller.data.dataset import write_dataset
from mlff_distiller.data.splits import split_dataset
from mlff_distiller.errors import InputError
from mlff_distiller.models.checkpoint import load_student, read_checkpoint_header
from mlff_distiller.teachers.base import Labels
from mlff_distiller.testing import predict
from mlff_distiller.training.config import TrainConfig
from mlff_distiller.training.trainer import TrainingDiverged, train_student

from .helpers import STUDENT_CONFIG, make_dataset, make_teacher, rattled, teacher_labels

QUICK = dict(batch_size=8, warmup_steps=10, progress=False, num_threads=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "d.h5", n_per_molecule=8)


def test_student_learns_the_teacher(dataset, tmp_path):
    config = TrainConfig(max_epochs=60, lr=3e-3, early_stopping_patience=0, **QUICK)
    result = train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")
    history = json.loads(open(result["log_json"]).read())
    first, best = history[0]["val_force_mae"], result["metrics"]["best_val_force_mae"]
    assert best < 0.3 * first, (first, best)
    # the saved best checkpoint is the EMA model that reached `best` on unseen CH3OH
    model = load_student(result["best_checkpoint"])
    structures, ids = rattled(8, seed=0)
    held_out = [a for a, i in zip(structures, ids, strict=True) if i == 2]
    labels = teacher_labels(make_teacher(), held_out)
    pred = np.concatenate([predict(model, a)["forces"] for a in held_out])
    true = np.concatenate([lab.forces for lab in labels])
    assert abs(np.abs(pred - true).mean() - best) < 1e-4
    r2 = 1 - ((pred - true) ** 2).sum() / ((true - true.mean(0)) ** 2).sum()
    assert r2 > 0.9, r2
    # references were fitted: per-atom energy error is small compared to the ~500 eV/atom scale
    assert result["metrics"]["final"]["val_energy_mae_per_atom"] < 0.05
    meta = read_checkpoint_header(result["best_checkpoint"])["metadata"]
    assert meta["teacher"] == "test:random-painn" and len(meta["dataset_hash"]) > 8
    rows = list(csv.DictReader(open(result["log_csv"])))
    assert len(rows) == len(history) == 60 and int(rows[-1]["step"]) == 60 * 5  # 40 structures


def test_float64_training(dataset, tmp_path):
    config = TrainConfig(max_epochs=1, dtype="float64", **QUICK)
    result = train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")
    assert read_checkpoint_header(result["last_checkpoint"])["dtype"] == "float64"


def test_hessian_loss_trains_and_lowers_hessian_error(tmp_path):
    data = make_dataset(tmp_path / "h.h5", n_per_molecule=3, hessian_rows=2)
    config = TrainConfig(max_epochs=15, hessian_weight=1.0, lr=3e-3, **QUICK)
    result = train_student(data, STUDENT_CONFIG, config, tmp_path / "run")
    assert result["metrics"]["scales"]["hessian"] != 1.0  # measured from the stored rows
    history = json.loads(open(result["log_json"]).read())
    assert history[-1]["val_hessian_rmse"] < 0.7 * history[0]["val_hessian_rmse"]


def test_existing_run_needs_resume(dataset, tmp_path):
    config = TrainConfig(max_epochs=1, **QUICK)
    train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")
    with pytest.raises(InputError, match="already holds a training run"):
        train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")


def test_empty_training_split_is_refused(tmp_path):
    data = make_dataset(tmp_path / "d.h5", n_per_molecule=2, val_molecules=(0, 1, 2, 3, 4, 5))
    with pytest.raises(InputError, match="training split has no structures"):
        train_student(data, STUDENT_CONFIG, TrainConfig(**QUICK), tmp_path / "run")


def test_element_only_in_validation_is_named(tmp_path):
    data = make_dataset(tmp_path / "d.h5", n_per_molecule=2, names=("H2", "H2O"),
                        val_molecules=(1,))
    with pytest.raises(InputError, match=r"\['O'\].*validation split but not in training"):
        train_student(data, STUDENT_CONFIG, TrainConfig(**QUICK), tmp_path / "run")


def test_nan_loss_stops_naming_the_batch_and_keeps_last_good_checkpoint(tmp_path):
    structures, ids = rattled(4, names=("H2O", "CH4"))
    labels = teacher_labels(make_teacher(), structures)
    bad = Atoms("OHH", positions=[[0, 0, 0], [0.0, 0.0, 0.0], [0.9, 0, 0]])  # H on top of O
    structures.append(bad)
    labels.append(Labels(energy=-2070.0, forces=np.zeros((3, 3))))
    ids.append(0)
    data = write_dataset(tmp_path / "nan.h5", structures, labels, ids)  # no splits: 10% held out
    config = TrainConfig(max_epochs=5, batch_size=2, checkpoint_every_steps=1,
                         **{k: v for k, v in QUICK.items() if k != "batch_size"})
    with pytest.raises(TrainingDiverged, match=r"batch \d+ of the epoch \(dataset structures "
                                               r"\[[0-9, ]*8[0-9, ]*\]\)") as info:
        train_student(data, STUDENT_CONFIG, config, tmp_path / "run")
    assert "last good checkpoint" in str(info.value)
    model = load_student(tmp_path / "run" / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_loss_spike_is_skipped_and_named(tmp_path, capfd):
    """A structure whose labels are far off (forces x 1e4) spikes the loss once the guard
    watches (after 20 steps): its batches are skipped and named in metrics.json and the log.
    It is left out of the loss scales, with a warning naming it."""
    structures, ids = rattled(10, names=("H2O", "CH4", "CH3OH"))  # train, val, train
    labels = teacher_labels(make_teacher(), structures)
    runs = {}
    for name in ("clean", "outlier"):
        data_structures, data_labels, data_ids = list(structures), list(labels), list(ids)
        if name == "outlier":  # dataset structure 3, a copy of H2O number 3
            data_structures.insert(3, structures[3].copy())
            data_labels.insert(3, Labels(energy=labels[3].energy,
                                         forces=labels[3].forces * 1e4))
            data_ids.insert(3, ids[3])
        data = write_dataset(tmp_path / f"{name}.h5", data_structures, data_labels, data_ids)
        split_dataset(data, ratios=None, train_ids=[0, 2], val_ids=[1], test_ids=[])
        config = TrainConfig(max_epochs=4, **dict(QUICK, batch_size=1))
        runs[name] = train_student(data, STUDENT_CONFIG, config, tmp_path / name)["metrics"]
    clean, outlier = runs["clean"], runs["outlier"]
    assert clean["skipped_batches"] == 0
    assert clean["scale_outliers"] == [] and outlier["scale_outliers"] == [3]
    assert outlier["scales"] == clean["scales"]  # the same structures set the scales
    err = capfd.readouterr().err
    assert "dataset structures [3]" in err and "left out of the loss scales" in err
    skipped = outlier["skipped_batches_last"]
    assert outlier["skipped_batches"] == len(skipped) >= 3  # once per epoch after step 20
    assert all(s["structures"] == [3] and s["loss"] > 1000 * s["recent_median"]
               for s in skipped)
    assert outlier["steps"] == 4 * 21 - outlier["skipped_batches"]
    log = list(csv.DictReader(open(tmp_path / "outlier" / "log.csv")))
    assert int(log[-1]["skipped_batches"]) == outlier["skipped_batches"]


def test_persistent_loss_spikes_stop_the_run(dataset, tmp_path, monkeypatch):
    """20 spiking batches in a row are divergence, not a spike: the run stops, names the
    batch and keeps its last good checkpoint."""
    from mlff_distiller.training import trainer

    real_step_loss, calls = trainer._step_loss, []

    def blown_up_after_30_steps(*args, **kwargs):
        loss, errors = real_step_loss(*args, **kwargs)
        calls.append(1)
        return (loss * 1e6 if len(calls) > 30 else loss), errors

    monkeypatch.setattr(trainer, "_step_loss", blown_up_after_30_steps)
    config = TrainConfig(max_epochs=100, checkpoint_every_steps=10, **dict(QUICK, batch_size=2))
    with pytest.raises(TrainingDiverged, match=r"20 batches in a row had a loss above "
                                               r"loss_spike_factor=1000 x the median") as info:
        train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")
    assert "step 30," in str(info.value) and "last good checkpoint" in str(info.value)
    assert len(calls) == 50
    assert read_checkpoint_header(tmp_path / "run" / "last.safetensors")["metadata"]["step"] == 30


def test_tensorboard_is_optional_and_guarded(dataset, tmp_path):
    config = TrainConfig(max_epochs=1, tensorboard=True, **QUICK)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="needs the 'tensorboard' package"):
            train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")
        return
    train_student(dataset, STUDENT_CONFIG, config, tmp_path / "run")
    assert any((tmp_path / "run" / "tensorboard").iterdir())
