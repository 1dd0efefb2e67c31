"""tasks.hotspot_metrics against values computed by hand on a tiny agency (10 areas, 3 test
months), plus ties, an all-zero month, perfect and oracle predictors, and a split built from
records."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tasks.hotspot import HotspotSplit, build_hotspot_split
from tasks.hotspot_metrics import (
    HOTSPOT_KEYS,
    flag_weights,
    hotspot_metrics,
    intensity_for_test,
    oracle_scores,
    persistence_scores,
    top_k_weights,
)
from tasks.metrics import METRIC_KEYS, binary_metrics

AREAS = [f"E01{i:06d}" for i in range(10)]
MONTHS = ["2024-01", "2024-02", "2024-03"]
# Recorded incidents in each test month (the label month), areas 0..9.
ACTUAL = np.array([
    [10, 8, 5, 3, 2, 1, 1, 0, 0, 0],  # total 30
    [0, 2, 6, 4, 4, 1, 1, 1, 1, 0],  # total 20
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # a month without any incident
])
LABELS = np.array([
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 1, 0, 0, 0, 0, 0, 0],  # 4 and 4 tie for 2nd place: the tie order picked area 3
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
])
SCORES = np.array([
    [0.9, 0.1, 0.8, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # flags 0 and 2
    [0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # 3-way tie for 2 flags: 2/3 each
    [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3],
])
INTENSITY = np.array([
    [6, 9, 7, 2, 2, 1, 1, 0.5, 0.5, 0.5],  # oracle flags 1 and 2
    [1, 2, 7, 5, 3, 1, 1, 1, 1, 0.5],  # oracle flags 2 and 3
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1.0],
])


def tiny_split(actual=ACTUAL, labels=LABELS, k: int = 2) -> HotspotSplit:
    n = actual.size
    return HotspotSplit(
        X_train=np.zeros((0, 1), np.float32),
        y_train=np.zeros(0, np.float32),
        X_test=np.zeros((n, 1), np.float32),
        y_test=labels.reshape(-1).astype(np.float32),
        feature_names=["count_lag1"],
        counts={},
        test_areas=np.tile(AREAS, len(actual)),
        test_months=np.repeat(MONTHS[: len(actual)], 10),
        test_next_counts=actual.reshape(-1).astype(np.int64),
        test_deprivation=np.linspace(0, 1, n),
        k=k,
        agency="A",
        record_influence=1,
    )


def test_hand_computed_hit_rate_pai_pei():
    m = hotspot_metrics(tiny_split(), SCORES.reshape(-1), INTENSITY.reshape(-1))
    assert set(HOTSPOT_KEYS) | set(METRIC_KEYS) == set(m)
    # model: Jan 10 + 5 = 15; Feb (0 + 2 + 6) * 2/3 = 16/3; Mar 0. Pooled over 30 + 20 incidents.
    assert m["hit_rate"] == pytest.approx((15 + 16 / 3) / 50)  # 61/150
    assert m["flagged_share"] == pytest.approx(2 / 10)
    assert m["pai"] == pytest.approx(61 / 150 / 0.2)  # 61/30 = 2.033
    # hindsight: Jan 10 + 8, Feb 6 + 4 -> 28/50; oracle: Jan 8 + 5, Feb 6 + 4 -> 23/50
    assert m["pai_hindsight"] == pytest.approx(28 / 50 / 0.2)
    assert m["pai_oracle"] == pytest.approx(23 / 50 / 0.2)
    assert m["pei"] == pytest.approx(61 / 69)  # (61/30) / (23/10)
    assert m["pei_hindsight"] == pytest.approx(61 / 84)  # (61/30) / (28/10)
    expected = binary_metrics(LABELS.reshape(-1), SCORES.reshape(-1))
    assert {key: m[key] for key in METRIC_KEYS} == expected


def test_without_ground_truth_pei_is_none():
    m = hotspot_metrics(tiny_split(), SCORES.reshape(-1))
    assert m["pei"] is None and m["pai_oracle"] is None
    assert m["pai"] == pytest.approx(61 / 30) and m["pei_hindsight"] == pytest.approx(61 / 84)


def test_tied_flags_are_shared_and_a_constant_predictor_scores_pai_one():
    np.testing.assert_allclose(top_k_weights(np.array([0.5, 0.5, 0.5, 0.1]), 2), [2 / 3, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(top_k_weights(np.array([0.9, 0.5, 0.5, 0.1]), 2), [1, 0.5, 0.5, 0])
    np.testing.assert_allclose(top_k_weights(np.array([0.2, 0.1]), 5), [1, 1])
    flags = flag_weights(tiny_split(), SCORES.reshape(-1))
    np.testing.assert_allclose(flags.reshape(3, 10).sum(axis=1), [2, 2, 2])
    m = hotspot_metrics(tiny_split(), np.full(30, 0.3))
    assert m["hit_rate"] == pytest.approx(0.2) and m["pai"] == pytest.approx(1.0)


def test_all_zero_month_adds_nothing_and_an_all_zero_period_is_undefined():
    only_two = hotspot_metrics(tiny_split(ACTUAL[:2], LABELS[:2]), SCORES[:2].reshape(-1))
    all_three = hotspot_metrics(tiny_split(), SCORES.reshape(-1))
    assert only_two["pai"] == pytest.approx(all_three["pai"])
    quiet = hotspot_metrics(tiny_split(ACTUAL[2:], LABELS[2:]), SCORES[2:].reshape(-1), INTENSITY[2:].reshape(-1))
    assert quiet["hit_rate"] is None and quiet["pai"] is None and quiet["pei"] is None
    assert quiet["pai_hindsight"] is None and quiet["flagged_share"] == pytest.approx(0.2)


def test_perfect_predictor_reaches_hindsight_and_oracle_scores_give_pei_one():
    split = tiny_split()
    perfect = hotspot_metrics(split, LABELS.reshape(-1).astype(float), INTENSITY.reshape(-1))
    assert perfect["pai"] == pytest.approx(perfect["pai_hindsight"]) and perfect["auc"] == 1.0
    oracle = hotspot_metrics(split, oracle_scores(split, INTENSITY.reshape(-1)), INTENSITY.reshape(-1))
    assert oracle["pei"] == pytest.approx(1.0) and oracle["pai"] == pytest.approx(23 / 10)
    scores = oracle_scores(split, INTENSITY.reshape(-1))
    assert ((scores >= 0) & (scores < 1)).all()
    assert (np.argsort(scores, kind="stable") == np.argsort(INTENSITY.reshape(-1), kind="stable")).all()


def test_intensity_table_is_aligned_by_area_and_month():
    split = tiny_split()
    table = pd.DataFrame({
        "agency": "A",
        "LSOA code": np.tile(AREAS, 3),
        "month": np.repeat(MONTHS, 10),
        "expected": INTENSITY.reshape(-1),
    }).sample(frac=1, random_state=0)
    other = table.assign(agency="B", expected=100.0)
    np.testing.assert_allclose(intensity_for_test(split, pd.concat([other, table])), INTENSITY.reshape(-1))
    m = hotspot_metrics(split, SCORES.reshape(-1), pd.concat([table, other]))
    assert m["pai_oracle"] == pytest.approx(23 / 10)
    with pytest.raises(ValueError, match=re.escape("no expected count for area|month 'E01000000|2024-01'")):
        intensity_for_test(split, table[~((table["LSOA code"] == AREAS[0]) & (table["month"] == MONTHS[0]))])


@pytest.mark.parametrize(
    "scores, message",
    [(np.zeros(29), "29 proba for 30 test rows"), (np.r_[np.nan, np.zeros(29)], "NaN or infinity")],
)
def test_bad_scores_raise(scores, message):
    with pytest.raises(ValueError, match=message):
        hotspot_metrics(tiny_split(), scores)


def test_metrics_of_a_split_built_from_records():
    """Hindsight flags by recorded counts equal the labels' areas; persistence is lag 1."""
    rng = np.random.default_rng(3)
    months = [f"2023-{m:02d}" for m in range(1, 13)]
    counts = rng.poisson(np.linspace(0.5, 8, 20)[:, None], (20, 12))
    rows = [(months[t], f"E01{a:06d}", "Drugs") for a, t in zip(*np.nonzero(counts), strict=True) for _ in range(counts[a, t])]
    records = pd.DataFrame(rows, columns=["month", "lsoa_code", "crime_type"]).assign(agency="A")
    areas = pd.DataFrame({
        "LSOA code": [f"E01{a:06d}" for a in range(20)],
        "LSOA name": "x",
        "Longitude": np.linspace(-1.6, -1.4, 20),
        "Latitude": 52.5,
        "deprivation": np.linspace(0.1, 0.9, 20),
        "night_economy": 0.2,
        "population": 1500,
    })
    split = build_hotspot_split(records, areas, "2023-10", share=0.1)
    assert split.k == 2
    np.testing.assert_array_equal(split.test_next_counts.reshape(3, 20), counts[:, 9:12].T)
    m = hotspot_metrics(split, split.y_test)
    assert m["pai"] == pytest.approx(m["pai_hindsight"])
    persistence = persistence_scores(split)
    np.testing.assert_allclose(persistence.reshape(3, 20), counts[:, 8:11].T / (1 + counts[:, 8:11].T), rtol=1e-5)
    assert hotspot_metrics(split, persistence)["pai"] > 1.5  # counts rise with the area index
