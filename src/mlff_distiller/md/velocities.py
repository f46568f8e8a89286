"""Initial velocities for MD: one Maxwell-Boltzmann draw, whatever the ASE version."""

from __future__ import annotations

import numpy as np
from ase import Atoms


def maxwell_boltzmann(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Set ``atoms``' momenta (in place) to a Maxwell-Boltzmann draw at ``temperature_K`` (K).

    ASE 3.29 renamed ``MaxwellBoltzmannDistribution`` to ``thermalize_momenta`` and
    deprecated the old name; this calls whichever the installed ASE has, with the same
    arguments, so results do not depend on the version.
    """
    from ase.md import velocitydistribution as vd

    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=temperature_K, rng=rng)


__all__ = ["maxwell_boltzmann"]
