"""Named student sizes and the one way to build a student.

Presets follow the prototype's sizes: ``original`` (F=128, 3 interactions, 20 RBF),
``tiny`` (F=64, 2 interactions, 12 RBF), ``ultra-tiny`` (F=32, 2 interactions, 10 RBF).

``tiny`` exists to be fast: one radial filter serves both its interactions
(``shared_filters``) and its cutoff is 4 Å, about 2/3 of the pairs of a drug-sized molecule
at 5 Å. Trained side by side with the prototype's tiny (separate filters, 5 Å) at the same
CPU budget it is as accurate (``benchmarks/tiny_variants.py``; README, Benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence

from mlff_distiller.errors import InputError
from mlff_distiller.models.forces import ForceField
from mlff_distiller.models.painn import PaiNN, PaiNNConfig, replace_config

PRESETS: dict[str, PaiNNConfig] = {
    "original": PaiNNConfig(hidden=128, n_interactions=3, n_rbf=20),
    "tiny": PaiNNConfig(hidden=64, n_interactions=2, n_rbf=12, cutoff=4.0, shared_filters=True),
    "ultra-tiny": PaiNNConfig(hidden=32, n_interactions=2, n_rbf=10),
}


def preset_config(name: str) -> PaiNNConfig:
    """The config of preset ``name``; a clear error lists the presets otherwise."""
    key = name.strip().lower().replace("_", "-")
    if key not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[key]


def preset_name(config: PaiNNConfig) -> str | None:
    """The preset whose architecture ``config`` matches (ignoring elements and cutoff)."""
    for name, preset in PRESETS.items():
        if (preset.hidden, preset.n_interactions, preset.n_rbf, preset.rbf) == (
            config.hidden,
            config.n_interactions,
            config.n_rbf,
            config.rbf,
        ):
            return name
    return None


def build_student(
    preset_or_config: str | PaiNNConfig = "original",
    elements: Sequence[int] | None = None,
    cutoff: float | None = None,
    seed: int | None = None,
) -> ForceField:
    """A freshly initialised student.

    Args:
        preset_or_config: preset name (``original``, ``tiny``, ``ultra-tiny``) or a config.
        elements: atomic numbers the student will know (overrides the config's).
        cutoff: radial cutoff in Å (overrides the config's).
        seed: seeds the weight initialisation when given.
    """
    config = (
        preset_config(preset_or_config)
        if isinstance(preset_or_config, str)
        else preset_or_config
    )
    if not isinstance(config, PaiNNConfig):
        raise InputError(
            f"build_student expected a preset name or PaiNNConfig, got {type(config).__name__}"
        )
    changes = {}
    if elements is not None:
        changes["elements"] = tuple(int(z) for z in elements)
    if cutoff is not None:
        changes["cutoff"] = float(cutoff)
    if changes:
        config = replace_config(config, **changes)
    if seed is not None:
        import torch

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return ForceField(PaiNN(config))
    return ForceField(PaiNN(config))
