"""Presets: parameter budgets of the prototype's students, and config validation."""

from __future__ import annotations

import pytest

from mlff_distiller import InputError, build_student
from mlff_distiller.models.painn import PaiNNConfig, count_parameters

PROTOTYPE_PARAMETERS = {"original": 427_292, "tiny": 77_000, "ultra-tiny": 21_000}


@pytest.mark.parametrize("preset", sorted(PROTOTYPE_PARAMETERS))
def test_parameter_count_within_30_percent(preset):
    n = count_parameters(build_student(preset))
    target = PROTOTYPE_PARAMETERS[preset]
    assert 0.7 * target <= n <= 1.3 * target, f"{preset}: {n} parameters vs ~{target}"


def test_unknown_preset_lists_choices():
    with pytest.raises(InputError, match="ultra-tiny"):
        build_student("huge")


@pytest.mark.parametrize("bad", [{"hidden": 0}, {"cutoff": -1.0}, {"rbf": "bessel"},
                                 {"elements": (1, 1)}, {"elements": (0, 6)}])
def test_invalid_config_is_named(bad):
    with pytest.raises(InputError, match=next(iter(bad))):
        PaiNNConfig(**bad)


def test_seed_makes_initialisation_reproducible():
    a, b = build_student("ultra-tiny", seed=3), build_student("ultra-tiny", seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and (va == vb).all()
