"""teachers stage of mlff-distiller: one small interface, one thin adapter per package."""

from mlff_distiller.teachers.base import LabelFailure, Labels, Teacher
from mlff_distiller.teachers.registry import TEACHERS, available_teachers, load_teacher

__all__ = ["TEACHERS", "LabelFailure", "Labels", "Teacher", "available_teachers", "load_teacher"]
