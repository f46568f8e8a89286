"""Metrics against hand-computed values on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlff_distiller.errors import InputError
from mlff_distiller.evaluation import metrics as m

REF = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -3.0]])
PRED = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -1.0]])  # errors: (0,1,0),0,(0,0,2)


def test_component_metrics_by_hand():
    # squared errors: 1 + 4 = 5 over 9 components
    assert m.rmse(PRED, REF) == pytest.approx(math.sqrt(5 / 9))
    assert m.mae(PRED, REF) == pytest.approx(3 / 9)
    assert m.max_abs_error(PRED, REF) == pytest.approx(2.0)
    # mean of ref components = 0/9 = 0; ss_tot = 1 + 4 + 9 = 14
    assert m.r2_score(PRED, REF) == pytest.approx(1 - 5 / 14)
    assert m.r2_score(REF, REF) == 1.0
    assert math.isnan(m.r2_score(np.ones(3), np.ones(3)))


def test_error_norms_and_percentiles():
    norms = m.error_norms(PRED, REF)
    np.testing.assert_allclose(norms, [1.0, 0.0, 2.0])
    p = m.error_percentiles(np.arange(101.0))
    assert p == {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
    # linear interpolation between order statistics
    assert m.error_percentiles([0.0, 1.0])["p50"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "pred, expected",
    [
        ([2.0, 0.0, 0.0], 0.0),  # parallel, different length
        ([-1.0, 0.0, 0.0], 180.0),  # antiparallel
        ([0.0, 5.0, 0.0], 90.0),  # orthogonal
        ([1.0, 1.0, 0.0], 45.0),
        ([0.0, 0.0, 0.0], 90.0),  # zero student force: no direction
        ([-1.0, 1e-9, 0.0], 180.0 - math.degrees(1e-9)),  # near-antiparallel stays accurate
    ],
)
def test_angular_error_edge_cases(pred, expected):
    angle = m.angular_errors(np.array([pred]), np.array([[1.0, 0.0, 0.0]]), min_ref_norm=0.0)
    assert angle.shape == (1,)
    assert angle[0] == pytest.approx(expected, abs=1e-9)


def test_angular_error_skips_small_teacher_forces():
    ref = np.array([[1.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.0, 0.0]])
    pred = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(m.angular_errors(pred, ref, min_ref_norm=0.1), [90.0])
    # a zero teacher force is skipped even with threshold 0
    np.testing.assert_allclose(m.angular_errors(pred, ref, min_ref_norm=0.0), [90.0, 180.0])
    with pytest.raises(InputError):
        m.angular_errors(pred, ref, min_ref_norm=-1)


def test_force_metrics_summary():
    out = m.force_metrics(PRED, REF, min_ref_norm=0.5)
    # angles: atom0 45°, atom1 0°, atom2 0° (same direction, shorter)
    assert out["angular_error_mean_deg"] == pytest.approx(15.0)
    assert out["angular_error_median_deg"] == pytest.approx(0.0)
    assert out["error_norm_max"] == pytest.approx(2.0)
    assert out["n_atoms"] == 3


def test_error_by_force_magnitude_bins():
    rows = m.error_by_force_magnitude(PRED, REF, edges=[0.0, 1.5, 2.5, math.inf])
    # |F| = 1, 2, 3 -> one atom per bin; errors 1, 0, 2
    assert [r["count"] for r in rows] == [1, 1, 1]
    assert [r["mean_error"] for r in rows] == pytest.approx([1.0, 0.0, 2.0])
    assert [r["relative_error"] for r in rows] == pytest.approx([1.0, 0.0, 2 / 3])
    empty = m.error_by_force_magnitude(PRED, REF, edges=[10.0, 20.0])[0]
    assert empty["count"] == 0 and math.isnan(empty["mean_error"])
    with pytest.raises(InputError):
        m.error_by_force_magnitude(PRED, REF, edges=[1.0, 0.5])


def test_grouped_metrics_per_element():
    out = m.grouped_force_metrics(PRED, REF, groups=[1, 6, 6])
    assert set(out) == {1, 6}
    assert out[1]["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert out[6]["mae"] == pytest.approx(2 / 6)
    assert out[6]["n_atoms"] == 2


def test_relative_energy_metrics_remove_each_molecules_offset():
    # molecule 0: constant 0.6 eV offset on 3 atoms -> zero residual;
    # molecule 1 (2 atoms): errors +0.2/-0.2 around a 1.0 eV offset -> 0.1 eV/atom residual;
    # molecule 2 has one structure only and is left out
    pred = [1.6, 2.6, 3.6, 1.2, 0.8, 9.0]
    ref = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0]
    out = m.relative_energy_metrics(pred, ref, [3, 3, 3, 2, 2, 5], [0, 0, 0, 1, 1, 2])
    assert out["n_molecules"] == 2 and out["n_structures"] == 5
    assert out["mae_per_atom"] == pytest.approx((0 + 0 + 0 + 0.1 + 0.1) / 5)
    assert out["offset_mae_per_atom"] == pytest.approx((0.2 + 0.5) / 2)
    with pytest.raises(InputError, match="molecule_ids"):
        m.relative_energy_metrics([1.0], [1.0], [1], [0, 1])


def test_energy_metrics_per_atom_and_structure():
    out = m.energy_metrics([1.0, -2.0], [0.0, 0.0], n_atoms=[2, 4])
    assert out["mae_per_structure"] == pytest.approx(1.5)
    assert out["mae_per_atom"] == pytest.approx((0.5 + 0.5) / 2)
    assert out["rmse_per_structure"] == pytest.approx(math.sqrt(2.5))
    with pytest.raises(InputError):
        m.energy_metrics([1.0], [1.0], n_atoms=[0])


def test_spearman_by_hand():
    assert m.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert m.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks x: 1 2 3 4, y: 1 3 2 4 -> 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/60 = 0.8
    assert m.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties get mean ranks: y ranks 1.5 1.5 3 -> pearson with 1 2 3
    assert m.spearman([1, 2, 3], [5, 5, 7]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(m.spearman([1, 2], [4, 4]))


def test_conformer_ranking_per_molecule():
    ref = np.array([0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 9.0, 9.5])
    pred = np.array([0.0, 2.0, 1.0, 3.0, 2.0, 1.0, 0.0, 1.0, 0.0])
    ids = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    out = m.conformer_ranking(pred, ref, ids, min_conformers=3)
    assert out["n_molecules"] == 2  # molecule 2 has only two conformers
    assert out["per_molecule"][0]["spearman"] == pytest.approx(0.8)
    assert out["per_molecule"][1]["spearman"] == pytest.approx(-1.0)
    assert out["per_molecule"][0]["pairwise_agreement"] == pytest.approx(5 / 6)
    assert out["spearman_mean"] == pytest.approx(-0.1)


def test_shape_mismatch_is_input_error():
    with pytest.raises(InputError, match="shape"):
        m.rmse(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(InputError):
        m.angular_errors(np.zeros((2, 2)), np.zeros((2, 2)))


def test_json_ready_drops_nan():
    assert m.json_ready({1: [np.float32(1.5), math.nan, np.int64(2)]}) == {"1": [1.5, None, 2]}


def test_pairwise_agreement_tie_tolerance():
    # reference pairs (0,1) differ by 0.0005 (a tie at 1 meV) and are skipped
    assert m.pairwise_order_agreement([1.0, 0.0, 5.0], [0.0, 0.0005, 1.0]) == pytest.approx(2 / 3)
    assert m.pairwise_order_agreement([1.0, 0.0, 5.0], [0.0, 0.0005, 1.0], 1e-3) == 1.0
    assert math.isnan(m.pairwise_order_agreement([1.0, 0.0], [0.0, 0.0]))
