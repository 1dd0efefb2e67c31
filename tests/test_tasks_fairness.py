"""tasks.fairness against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from tasks.fairness import (
    deprivation_quintiles,
    flag_disparity,
    flag_shares_by_quintile,
    quintile_of,
    spearman,
    utility_spread,
)

# ---------------------------------------------------------------- utility spread

PER_AGENCY = {
    "a": {"auc": 0.6, "log_loss": 0.5},
    "b": {"auc": 0.8, "log_loss": 0.3},
    "c": {"auc": 0.7, "log_loss": 0.4},
    "d": {"auc": None, "log_loss": None},  # e.g. one class only in its test months
}
SIZES = {"a": 100, "b": 10_000, "c": 1_000, "d": 5}


def test_utility_spread_hand_values():
    s = utility_spread(PER_AGENCY, SIZES, "auc")
    assert s["n_agencies"] == 3
    assert (s["min"], s["max"]) == (0.6, 0.8) and s["range"] == pytest.approx(0.2)
    assert s["std"] == pytest.approx(np.sqrt(0.02 / 3))  # population std of .6, .8, .7
    assert (s["worst_agency"], s["worst"]) == ("a", 0.6)
    # d has no value, so the smallest agency with one is a
    assert (s["smallest_agency"], s["smallest"]) == ("a", 0.6)
    assert (s["largest_agency"], s["largest"]) == ("b", 0.8)
    assert s["size_rank_correlation"] == pytest.approx(1.0)  # bigger agencies do better


def test_utility_spread_lower_is_better_metric():
    s = utility_spread(PER_AGENCY, SIZES, "log_loss")
    assert (s["worst_agency"], s["worst"]) == ("a", 0.5)  # the highest loss
    assert s["size_rank_correlation"] == pytest.approx(1.0)  # loss falls with size: still +1
    flipped = utility_spread(PER_AGENCY, {"a": 10_000, "b": 100, "c": 1_000, "d": 5}, "auc")
    assert flipped["size_rank_correlation"] == pytest.approx(-1.0)


def test_utility_spread_edge_cases():
    two = utility_spread({"a": {"auc": 0.6}, "b": {"auc": 0.7}}, {"a": 1, "b": 2}, "auc")
    assert two["size_rank_correlation"] is None and two["range"] == pytest.approx(0.1)
    empty = utility_spread({"a": {"auc": None}}, {"a": 1}, "auc")
    assert empty["n_agencies"] == 0 and empty["worst"] is None
    with pytest.raises(ValueError, match=r"no size for agency\(ies\) \['d'\]"):
        utility_spread(PER_AGENCY, {"a": 1, "b": 2, "c": 3}, "auc")


def test_spearman_with_ties_matches_scipy():
    x, y = np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 2, 2])
    assert spearman(x, y) == pytest.approx(4 / np.sqrt(20))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 30).astype(float), rng.integers(0, 5, 30).astype(float)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman(np.array([1.0, 2, 3]), np.array([5.0, 5, 5])) is None


# ---------------------------------------------------------------- quintiles and flags


def test_deprivation_quintiles_over_the_whole_table():
    areas = pd.DataFrame({
        "LSOA code": [f"E{i}" for i in range(10)] + ["E0", "E1"],  # listed twice: counted once
        "deprivation": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.1, 0.2],
    })
    # linear interpolation: the 20th percentile of 0.1..1.0 sits 1.8 steps in -> 0.28
    np.testing.assert_allclose(deprivation_quintiles(areas), [0.28, 0.46, 0.64, 0.82])
    edges = np.array([0.2, 0.4, 0.6, 0.8])
    assert quintile_of(np.array([0.0, 0.2, 0.39, 0.4, 0.99]), edges).tolist() == [1, 2, 2, 3, 5]


DEPRIVATION = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
EDGES = np.array([0.2, 0.4, 0.6, 0.8])  # quintile q holds rows 2q-2 and 2q-1
FLAGS = np.array([0, 0, 0, 1, 0, 0, 0.5, 0, 1, 0.5])  # 3 flags
TRUE = np.array([1, 1, 2, 2, 2, 2, 3, 3, 2, 2])  # 20
RECORDED = np.array([0, 2, 1, 3, 2, 2, 2, 2, 5, 1])  # 20


def test_flag_shares_by_quintile_hand_values():
    rows = flag_shares_by_quintile(FLAGS, DEPRIVATION, TRUE, RECORDED, EDGES)
    assert [r["quintile"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["area_months"] for r in rows] == [2] * 5
    assert (rows[0]["deprivation_from"], rows[0]["deprivation_to"]) == (None, 0.2)
    assert (rows[4]["deprivation_from"], rows[4]["deprivation_to"]) == (0.8, None)
    np.testing.assert_allclose([r["flag_share"] for r in rows], [0, 1 / 3, 0, 1 / 6, 1 / 2])
    np.testing.assert_allclose([r["true_share"] for r in rows], [0.1, 0.2, 0.2, 0.3, 0.2])
    np.testing.assert_allclose([r["recorded_share"] for r in rows], [0.1, 0.2, 0.2, 0.2, 0.3])
    np.testing.assert_allclose([r["flag_minus_true"] for r in rows], [-0.1, 2 / 15, -0.2, -2 / 15, 0.3])
    d = flag_disparity(rows)
    assert d["max_gap_true"] == pytest.approx(0.3)  # quintile 5: half the flags, a fifth of the incidents
    assert d["max_gap_recorded"] == pytest.approx(0.2)
    assert d["most_deprived_ratio_true"] == pytest.approx(2.5)
    assert d["most_deprived_ratio_recorded"] == pytest.approx(0.5 / 0.3)


def test_flags_in_proportion_to_true_incidents_have_no_gap():
    rows = flag_shares_by_quintile(TRUE / 10, DEPRIVATION, TRUE, RECORDED, EDGES)
    assert flag_disparity(rows)["max_gap_true"] == pytest.approx(0.0, abs=1e-12)
    assert flag_disparity(rows)["most_deprived_ratio_true"] == pytest.approx(1.0)


def test_without_ground_truth_or_flags():
    rows = flag_shares_by_quintile(FLAGS, DEPRIVATION, None, RECORDED, EDGES)
    assert all(r["true_share"] is None and r["flag_minus_true"] is None for r in rows)
    d = flag_disparity(rows)
    assert d["max_gap_true"] is None and d["most_deprived_ratio_true"] is None
    assert d["max_gap_recorded"] == pytest.approx(0.2)
    none = flag_shares_by_quintile(np.zeros(10), DEPRIVATION, TRUE, RECORDED, EDGES)
    assert all(r["flag_share"] is None for r in none) and flag_disparity(none)["max_gap_true"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(recorded_counts=RECORDED[:9]), "9 recorded_counts for 10 flags"),
        (dict(quintile_edges=EDGES[:3]), "need 4 ascending quintile edges"),
        (dict(flags=-FLAGS), "must be >= 0"),
        (dict(true_counts=np.r_[np.nan, TRUE[1:]]), "true_counts contain NaN"),
    ],
)
def test_bad_inputs_raise(kwargs, message):
    arguments = dict(flags=FLAGS, deprivation=DEPRIVATION, true_counts=TRUE, recorded_counts=RECORDED, quintile_edges=EDGES)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        flag_shares_by_quintile(**arguments)
