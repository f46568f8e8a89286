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
