"""On-policy frame scoring and sampling."""

from __future__ import annotations

import numpy as np
from ase.build import molecule
from ase.calculators.lj import LennardJones

from mlff_distiller.onpolicy import disagreement, sample_frames


def test_disagreement_committee_and_single():
    a = np.zeros((3, 3))
    b = a.copy()
    b[1] = [0.3, 0.4, 0.0]
    assert disagreement([a, b]) == 0.5
    assert disagreement([a, a, b]) == 0.5
    assert disagreement([a]) == 0.0
    assert disagreement([b], previous=a) == 0.5


def test_sample_frames_keeps_the_most_uncertain():
    start = molecule("CH4")
    calcs = [LennardJones(sigma=1.0, epsilon=0.01, rc=4.0),
             LennardJones(sigma=1.1, epsilon=0.01, rc=4.0)]
    frames = sample_frames(start, calcs, steps=40, stride=5, temperature_K=300,
                           timestep_fs=0.5, min_distance=0.3, keep=3, seed=0)
    scores = [f.info["onpolicy_score"] for f in frames]
    assert len(frames) == 3 and scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert all(f.calc is None and len(f) == 5 for f in frames)


def test_sample_frames_thermostat_keeps_the_centre_of_mass_and_scores_raw_forces():
    """The Langevin noise must not move the molecule (FixCom, as the MD runner does) and the
    score compares the calculators' unconstrained forces: one calculator twice scores 0."""
    import warnings

    start = molecule("CH3OH")
    lj = LennardJones(sigma=1.0, epsilon=0.01, rc=4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # ASE's deprecated fixcm=True
        frames = sample_frames(start, [lj, LennardJones(sigma=1.0, epsilon=0.01, rc=4.0)],
                               steps=200, stride=10, temperature_K=600, timestep_fs=0.5,
                               min_distance=0.3, keep=20, seed=0)
    assert len(frames) == 20
    centre = start.get_center_of_mass()
    for frame in frames:
        assert np.allclose(frame.get_center_of_mass(), centre, atol=1e-8)
        assert frame.info["onpolicy_score"] < 1e-12
