"""tasks.coverage against values computed by hand: PEI*, RRI, hit rate and PAI of a tiny agency
(10 areas, 3 test months), and the block bootstrap (which months it draws, and intervals whose
answer is known)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.coverage import (
    FIELDS,
    circular_block_indices,
    coverage_label,
    default_block,
    difference,
    estimate,
    metric_estimates,
    metrics_of_sums,
    min_areas_for,
    month_sums,
)
from tasks.hotspot import HotspotSplit

AREAS = [f"E01{i:06d}" for i in range(10)]
MONTHS = ["2024-01", "2024-02", "2024-03"]
ACTUAL = np.array([
    [10, 8, 5, 3, 2, 1, 1, 0, 0, 0],  # 30 incidents
    [0, 2, 6, 4, 4, 1, 1, 1, 1, 0],  # 20
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # none
])
# The month before each test month (the count_lag1 feature): December, then January, February.
PRIOR = np.array([
    [4, 2, 6, 0, 1, 1, 0, 0, 0, 0],  # 14
    ACTUAL[0],  # 30
    ACTUAL[1],  # 20
])
# Coverage 20% of 10 areas: 2 flags a month.
SCORES = np.array([
    [0.1, 0.1, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # flags areas 2 and 3
    [0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # flags 0 and 1
    [0.1, 0.1, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # flags 2 and 3
])


def tiny_split(actual: np.ndarray = ACTUAL, prior: np.ndarray = PRIOR) -> HotspotSplit:
    n = actual.size
    return HotspotSplit(
        X_train=np.zeros((0, 1), np.float32),
        y_train=np.zeros(0, np.float32),
        X_test=np.log1p(prior.reshape(-1, 1)).astype(np.float32),
        y_test=np.zeros(n, np.float32),
        feature_names=["count_lag1"],
        counts={},
        test_areas=np.tile(AREAS, len(actual)),
        test_months=np.repeat(MONTHS[: len(actual)], 10),
        test_next_counts=actual.reshape(-1).astype(np.int64),
        test_deprivation=np.zeros(n),
        k=2,
        agency="A",
        record_influence=1,
    )


def test_min_areas_is_the_hindsight_map():
    actual = ACTUAL[0]
    assert min_areas_for(actual, 0) == 0
    assert min_areas_for(actual, 8) == 1  # area 0 alone holds 10
    assert min_areas_for(actual, 10) == 1
    assert min_areas_for(actual, 10.5) == 2
    assert min_areas_for(actual, 18) == 2
    assert min_areas_for(actual, 16 / 3) == 1


def test_hand_computed_month_sums():
    sums = month_sums(tiny_split(), SCORES.reshape(-1), 0.2, MONTHS)
    f = {name: i for i, name in enumerate(FIELDS)}
    # January: flags {2, 3}: 5 + 3 = 8 hits of 30; hindsight: area 0 (10) alone holds 8 -> a* = 1;
    # the same areas held 6 + 0 = 6 of December's 14.
    assert sums[0, [f["hits"], f["incidents"], f["flagged"], f["areas"], f["min_areas"], f["prior_hits"], f["prior_incidents"]]].tolist() == [8, 30, 2, 10, 1, 6, 14]
    # February: flags {0, 1}: 0 + 2 hits of 20 -> a* = 1 (area 2 holds 6); January held 10 + 8 = 18.
    assert sums[1, [f["hits"], f["min_areas"], f["prior_hits"], f["prior_incidents"]]].tolist() == [2, 1, 18, 30]
    # March has no incident: it counts in the flagged share, not in PEI*'s areas.
    assert sums[2, f["flagged"]] == 2 and sums[2, f["flagged_active"]] == 0
    assert sums[2, [f["prior_hits"], f["prior_incidents"]]].tolist() == [10, 20]


def test_hand_computed_pei_star_rri_pai():
    m = {k: float(v) for k, v in metrics_of_sums(month_sums(tiny_split(), SCORES.reshape(-1), 0.2, MONTHS).sum(axis=0)).items()}
    assert m["hit_rate"] == pytest.approx(10 / 50)
    assert m["pai"] == pytest.approx((10 / 50) / (6 / 30))  # = 1: as good as random
    assert m["pei_star"] == pytest.approx((1 + 1) / (2 + 2))  # half the flagged areas were needed
    # RRI = (hits now / hits of the same areas the month before) / (incidents now / before)
    assert m["rri"] == pytest.approx((10 / 34) / (50 / 64))  # = 32/85
    january = metrics_of_sums(month_sums(tiny_split(), SCORES.reshape(-1), 0.2, MONTHS)[0])
    assert float(january["rri"]) == pytest.approx((8 / 6) / (30 / 14))  # = 28/45
    assert float(january["pei_star"]) == pytest.approx(0.5)


def test_pei_star_is_one_for_the_hindsight_map_and_fractional_ties():
    hindsight = month_sums(tiny_split(), ACTUAL.reshape(-1).astype(float), 0.2, MONTHS).sum(axis=0)
    assert float(metrics_of_sums(hindsight)["pei_star"]) == pytest.approx(1.0)
    # February: a 3-way tie for 2 flags catches (0 + 2 + 6) * 2/3 = 16/3 hits; area 2 alone holds 6.
    tied = SCORES.copy()
    tied[1] = [0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    feb = month_sums(tiny_split(), tied.reshape(-1), 0.2, MONTHS)[1]
    assert feb[FIELDS.index("hits")] == pytest.approx(16 / 3)
    assert feb[FIELDS.index("min_areas")] == 1


def test_coverage_sets_the_flags_per_month():
    # 1% of 10 areas is still one area (k >= 1); 10% is one; 30% is three.
    f = FIELDS.index("flagged")
    assert month_sums(tiny_split(), SCORES.reshape(-1), 0.01, MONTHS)[:, f].tolist() == [1, 1, 1]
    assert month_sums(tiny_split(), SCORES.reshape(-1), 0.3, MONTHS)[:, f].tolist() == [3, 3, 3]
    assert coverage_label(0.01) == "1%" and coverage_label(0.05) == "5%" and coverage_label(0.1) == "10%"


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="9 scores for 30 test rows"):
        month_sums(tiny_split(), np.zeros(9), 0.2, MONTHS)
    with pytest.raises(ValueError, match="NaN"):
        month_sums(tiny_split(), np.full(30, np.nan), 0.2, MONTHS)


def test_circular_blocks_draw_exactly_the_possible_resamples():
    rng = np.random.default_rng(1)
    index = circular_block_indices(3, 2, 4000, rng)
    assert index.shape == (4000, 3)
    # Two blocks of two consecutive months (3 wraps to 0), cut to three months: (s, s+1, s').
    expected = {(s, (s + 1) % 3, t) for s in range(3) for t in range(3)}
    drawn, counts = np.unique(index, axis=0, return_counts=True)
    assert {tuple(int(v) for v in row) for row in drawn} == expected
    assert np.allclose(counts / 4000, 1 / 9, atol=0.03)
    # Every month is drawn equally often (the circular version has no edge effect).
    assert np.allclose(np.bincount(index.ravel(), minlength=3) / index.size, 1 / 3, atol=0.02)
    assert default_block(6) == 2 and default_block(1) == 1 and default_block(27) == 3


def _sums(hits: list[float], incidents: list[float]) -> np.ndarray:
    out = np.zeros((len(hits), len(FIELDS)))
    out[:, FIELDS.index("hits")] = hits
    out[:, FIELDS.index("incidents")] = incidents
    out[:, FIELDS.index("flagged")] = 1
    out[:, FIELDS.index("areas")] = 4
    return out


def test_bootstrap_interval_of_a_known_distribution():
    # Two months, hit rates 3/4 and 1/4; resampling single months gives 0.75, 0.5, 0.5, 0.25
    # (each 1/4): the point is 0.5 and the 95% interval the two extremes.
    sums = _sums([3, 1], [4, 4])
    index = circular_block_indices(2, 1, 2000, np.random.default_rng(0))
    e = metric_estimates(sums, index)["hit_rate"]
    assert (e.value, e.low, e.high) == (0.5, 0.25, 0.75)
    # Given resamples, by hand: replicate hit rates sorted [0.25, 0.5, 0.5, 0.75]; the 25% and 75%
    # linear quantiles sit at positions 0.75 and 2.25.
    fixed = np.array([[0, 0], [1, 1], [0, 1], [1, 0]])
    e = estimate(sums, fixed, lambda s: metrics_of_sums(s)["hit_rate"], level=0.5)
    assert e.low == pytest.approx(0.25 + 0.75 * 0.25) and e.high == pytest.approx(0.5 + 0.25 * 0.25)


def test_bootstrap_difference_is_paired():
    index = circular_block_indices(2, 1, 500, np.random.default_rng(0))
    reference = _sums([3, 1], [4, 4])
    same = difference(reference, reference, index)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # unpaired draws would spread
    # One more hit each month: hit rate +1/4 in every replicate, PAI +1/4 / (1/4) = +1 exactly.
    better = difference(_sums([4, 2], [4, 4]), reference, index)
    assert better.value == pytest.approx(1.0) and better.low == pytest.approx(1.0) and better.high == pytest.approx(1.0)
    assert better.excludes_zero() and not same.excludes_zero()


def test_undefined_ratios_are_none():
    e = metric_estimates(_sums([0, 0], [0, 0]), circular_block_indices(2, 1, 50, np.random.default_rng(0)))
    assert e["hit_rate"].value is None and e["hit_rate"].low is None
    with pytest.raises(ValueError, match="block bootstrap"):
        circular_block_indices(0, 1, 10, np.random.default_rng(0))
