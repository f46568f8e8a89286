"""MACE teacher through ``mace-torch`` from a model file.

A MACE ``.model`` file is a pickled torch module: load only files you trust. Energies in
eV, forces in eV/Å, stress in eV/Å^3 as MACE's ASE calculator returns them.

``mace-torch`` pins ``e3nn==0.4.4`` while ``sevenn`` needs ``e3nn>=0.5``; MACE runs on the
newer e3nn, so the ``[mace]`` extra lists MACE's runtime dependencies and ``mace-torch``
itself is installed with ``pip install --no-deps mace-torch``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlff_distiller.errors import InputError
from mlff_distiller.teachers.base import Teacher, package_version, require

_ENV_FLAG = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_HINT = "then: pip install --no-deps mace-torch (its e3nn==0.4.4 pin conflicts with sevenn)"


class MACETeacher(Teacher):
    """A MACE model file evaluated by ``mace.calculators.MACECalculator``.

    Args:
        path: the ``.model`` file.
        device: torch device string.
        dtype: ``float64`` (default, precise labels) or ``float32``.
    """

    def __init__(self, path: str, device: str = "cpu", dtype: str = "float64") -> None:
        if not Path(path).is_file():
            raise InputError(f"MACE model file {path!r} does not exist; use --teacher mace:PATH "
                             "with the path of a .model file")
        import torch

        default_dtype = torch.get_default_dtype()
        # importing mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 process-wide; undo it after
        env_before = os.environ.get(_ENV_FLAG)
        try:
            calculators = require("mace.calculators", "mace", "the MACE teacher", hint=_HINT)
            self._calc = calculators.MACECalculator(model_paths=str(path), device=device,
                                                    default_dtype=dtype)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
            raise InputError(f"MACE model file {path!r} could not be loaded: "
                             f"{type(exc).__name__}: {exc}") from None
        finally:
            torch.set_default_dtype(default_dtype)  # MACECalculator sets it globally
            if env_before is None:
                os.environ.pop(_ENV_FLAG, None)
            else:
                os.environ[_ENV_FLAG] = env_before
        self.name = f"mace:{Path(path).name}"
        self.version = package_version("mace-torch")
        table = getattr(self._calc, "z_table", None)
        self.supported_elements = (frozenset(int(z) for z in table.zs)
                                   if table is not None else None)

    def calculator(self):
        """The loaded ``MACECalculator``."""
        return self._calc
