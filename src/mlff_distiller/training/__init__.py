"""Training stage: distil teacher labels into a student (loss, trainer, EMA, resume, DDP).

Entry points: :func:`train_student` (``mlffd train``) and :func:`sweep_students`
(``mlffd sweep``); hyperparameters live in :class:`TrainConfig`.
"""

from mlff_distiller.training.config import TrainConfig, load_train_config
from mlff_distiller.training.sweep import sweep_students
from mlff_distiller.training.trainer import TrainingDiverged, train_student

__all__ = ["TrainConfig", "TrainingDiverged", "load_train_config", "sweep_students",
           "train_student"]
