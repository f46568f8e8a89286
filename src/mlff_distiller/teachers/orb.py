"""Orb teacher through ``orb-models`` (Orb v3 / v2 names as ``ORB_PRETRAINED_MODELS`` lists).

Weights come from orb-models' own download (cached by ``cached_path``) when online, or from
a local checkpoint file (``weights=PATH``, a state dict) when offline. Energies in eV,
forces in eV/Å, stress in eV/Å^3 as orb-models' ASE calculator returns them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from mlff_distiller.errors import InputError
from mlff_distiller.teachers.base import Teacher, package_version, require

DEFAULT_MODEL = "orb-v3-conservative-inf-omat"
_PURPOSE = "the Orb teacher"


def orb_model_names() -> list[str]:
    """Model names orb-models exposes (``orb-v3-conservative-inf-omat``, ``orb-v2``, ...)."""
    pretrained = require("orb_models.forcefield.pretrained", "orb", _PURPOSE)
    return sorted(pretrained.ORB_PRETRAINED_MODELS)


class OrbTeacher(Teacher):
    """An orb-models force field.

    Args:
        model: a name from :func:`orb_model_names`.
        weights: local checkpoint (state dict) for that architecture; ``None`` downloads.
        device: torch device string.
        precision: ``float32-highest`` (default), ``float32-high`` or ``float64``. orb-models
            sets torch's global default dtype while loading; it is restored afterwards.
    """

    def __init__(self, model: str = DEFAULT_MODEL, weights: str | None = None,
                 device: str = "cpu", precision: str = "float32-highest") -> None:
        import torch

        pretrained = require("orb_models.forcefield.pretrained", "orb", _PURPOSE)
        calculator_module = require("orb_models.forcefield.calculator", "orb", _PURPOSE)
        if model not in pretrained.ORB_PRETRAINED_MODELS:
            raise InputError(f"orb model {model!r} is unknown; orb-models provides "
                             f"{', '.join(sorted(pretrained.ORB_PRETRAINED_MODELS))}")
        kwargs = {"device": device, "precision": precision, "compile": False}
        if weights is not None:
            if not Path(weights).is_file():
                raise InputError(f"orb weights file {weights!r} does not exist; pass the path "
                                 f"of a downloaded {model} checkpoint (.ckpt)")
            kwargs["weights_path"] = str(Path(weights).resolve())
        default_dtype = torch.get_default_dtype()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*default dtype", category=UserWarning)
                warnings.filterwarnings("ignore", message=".*precision=float32-high",
                                        category=UserWarning)
                self._model = pretrained.ORB_PRETRAINED_MODELS[model](**kwargs)
        except (OSError, ConnectionError) as exc:
            raise InputError(f"could not fetch weights of orb model {model!r} ({exc}); when "
                             "offline pass --teacher-weights PATH to a local checkpoint") from None
        except RuntimeError as exc:
            raise InputError(f"orb weights {weights!r} do not fit model {model!r}: {exc}") from None
        finally:
            torch.set_default_dtype(default_dtype)
        self._calc = calculator_module.ORBCalculator(self._model, device=device)
        self.needs_charge_spin = bool(self._calc.expects_charge_and_spin)
        self.name = f"orb:{model}"
        self.version = package_version("orb-models")
        self.supported_elements = frozenset(range(1, 119))

    def calculator(self):
        """The ``ORBCalculator`` around the loaded model."""
        return self._calc

    def label_one(self, atoms):
        """Labels of one structure; OMol models get neutral singlet defaults if unset."""
        if self.needs_charge_spin:
            atoms = atoms.copy()
            atoms.info.setdefault("charge", 0)
            atoms.info.setdefault("spin", 1)
        return super().label_one(atoms)
