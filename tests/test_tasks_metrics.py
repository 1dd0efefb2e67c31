"""tasks.metrics against brute-force and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.metrics import METRIC_KEYS, auc, binary_metrics, weighted_mean


def brute_force_auc(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=300)
    p = rng.integers(0, 12, size=300) / 11  # few distinct values: many ties, also across classes
    assert auc(y, p) == pytest.approx(brute_force_auc(y, p), abs=1e-12)


def test_auc_hand_values():
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert auc(np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3])) is None


def test_binary_metrics_hand_values():
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.9, 0.6, 0.4, 0.7, 0.1])
    m = binary_metrics(y, p)
    assert set(m) == set(METRIC_KEYS)
    # predicted 1 0 ... : [1, 1, 0, 1, 0] -> TP 2, FP 1, FN 1, TN 1
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    expected_ll = -np.mean([math.log(0.9), math.log(0.4), math.log(0.4), math.log(0.7), math.log(0.9)])
    assert m["log_loss"] == pytest.approx(expected_ll)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["positive_rate"] == pytest.approx(3 / 5)
    assert m["auc"] == pytest.approx(brute_force_auc(y, p))
    assert m["n"] == 5 and isinstance(m["n"], int)


def test_binary_metrics_threshold_and_clipping():
    y = np.array([1, 0])
    p = np.array([0.0, 1.0])  # confidently wrong: log loss is finite thanks to clipping
    m = binary_metrics(y, p)
    assert m["log_loss"] == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert m["accuracy"] == 0 and m["f1"] == 0
    assert binary_metrics(np.array([1, 0]), np.array([0.3, 0.2]), threshold=0.25)["accuracy"] == 1


def test_binary_metrics_undefined_values_are_none():
    m = binary_metrics(np.zeros(4), np.full(4, 0.1))
    assert m["auc"] is None and m["f1"] is None and m["accuracy"] == 1
    empty = binary_metrics(np.array([]), np.array([]))
    assert empty["n"] == 0 and all(empty[k] is None for k in METRIC_KEYS if k != "n")
    with pytest.raises(ValueError, match="labels"):
        binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics(np.array([0, 1]), np.array([0.1, np.nan]))


def test_weighted_mean_skips_none_per_metric():
    per_agency = {
        "a": {"auc": 0.8, "f1": 0.5, "n": 100},
        "b": {"auc": None, "f1": 0.2, "n": 300},
        "c": {"auc": 0.6, "f1": None, "n": 100},
    }
    weights = {"a": 100, "b": 300, "c": 100}
    m = weighted_mean(per_agency, weights)
    assert m["auc"] == pytest.approx((0.8 * 100 + 0.6 * 100) / 200)
    assert m["f1"] == pytest.approx((0.5 * 100 + 0.2 * 300) / 400)
    assert m["n"] == 500  # counts add up


def test_weighted_mean_edges():
    assert weighted_mean({"a": {"auc": None}}, {"a": 1}) == {"auc": None}
    assert weighted_mean({"a": {"auc": 0.7}}, {"a": 0}) == {"auc": None}
    assert weighted_mean({}, {}) == {}
    with pytest.raises(ValueError, match="no weight"):
        weighted_mean({"a": {"auc": 0.7}}, {"b": 1})
