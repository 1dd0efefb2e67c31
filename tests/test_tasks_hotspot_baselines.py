"""tasks.hotspot_baselines: the counts read back from a split (with and without the audit
hold-out), each baseline's map on a hand-made three-area line, and the evaluation's result
checked against tasks.hotspot_metrics where the two overlap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clients.agency import hold_out_for_audit
from policedata.synthetic import month_range
from tasks.hotspot import build_hotspot_split
from tasks.hotspot_baselines import (
    PROMAP_CELL_M,
    baseline_maps,
    baseline_scores,
    centroid_distances,
    counts_from_split,
    dp_cost,
    evaluate_baselines,
    noisy_counts,
    sepp_map,
    window_sums,
)
from tasks.hotspot_metrics import hotspot_metrics, persistence_scores
from tasks.sepp import fit_sepp, forecast
from tests.test_tasks_hotspot import make_areas, records_from_counts

MONTHS = month_range("2023-01", 16)
N_AREAS = 20


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    rng = np.random.default_rng(3)
    rate = np.exp(rng.normal(0, 1, N_AREAS))[:, None] * np.ones(len(MONTHS))
    return rng.poisson(rate * 2).astype(np.int64)


@pytest.fixture(scope="module")
def split(counts):
    return build_hotspot_split(records_from_counts(counts, MONTHS), make_areas(N_AREAS), "2024-01", share=0.1, period=(MONTHS[0], MONTHS[-1]))


def test_counts_read_back_from_the_split(split, counts):
    table = counts_from_split(split)
    assert table.months == MONTHS
    assert table.codes.tolist() == [f"E01{i:06d}" for i in range(N_AREAS)]
    assert np.array_equal(table.counts, counts)
    # The audit hold-out moves training rows out of X_train; the counts do not change.
    held = hold_out_for_audit(split, 0.3, b"key")
    assert held.X_holdout is not None and len(held.X_holdout) > 0
    assert np.array_equal(counts_from_split(held).counts, counts)


def test_window_sums_by_hand():
    assert window_sums(np.array([[1, 2, 3, 4]]), 2).tolist() == [[0, 1, 3, 5]]
    assert window_sums(np.array([[1, 2, 3, 4]]), 12).tolist() == [[0, 1, 3, 6]]


def test_baseline_maps_by_hand():
    # Three areas on a line at 0, 300 and 1000 m; months 0..2; scores of month 2.
    distances = np.abs(np.subtract.outer([0.0, 300.0, 1000.0], [0.0, 300.0, 1000.0]))
    counts = np.array([[1, 2, 9], [4, 0, 9], [0, 3, 9]])
    maps = baseline_maps(counts, distances, kde_bandwidth_m=500, kde_months=12, promap_radius_m=400, promap_months=2)
    assert maps["naive-1m"][:, 2].tolist() == [2, 0, 3]
    assert maps["naive-3m"][:, 2].tolist() == [3, 4, 3]
    # KDE: area 0 gets its own 3, area 1's 4 at 300 m and area 2's 3 at 1000 m.
    assert maps["kde"][0, 2] == pytest.approx(3 + 4 * np.exp(-0.5 * 0.36) + 3 * np.exp(-0.5 * 4))
    # ProMap: month 1 counts fully, month 0 half; area 1 (300 m) weighs 1 / (1 + 300 / 50);
    # area 2 (1000 m) is beyond 400 m.
    own, near = 2 + 1 / 2, 0 + 4 / 2
    assert maps["promap"][0, 2] == pytest.approx(own + near / (1 + 300 / PROMAP_CELL_M))
    assert maps["promap"][2, 2] == pytest.approx(3 + 0 / 2)
    with pytest.raises(ValueError, match="bandwidth"):
        baseline_maps(counts, distances, kde_bandwidth_m=0)


def test_naive_one_month_is_persistence(split):
    scores = baseline_scores(split, make_areas(N_AREAS))
    assert set(scores) == {"naive-1m", "naive-3m", "naive-12m", "kde", "promap", "sepp"}
    persistence = persistence_scores(split)
    assert np.array_equal(np.argsort(scores["naive-1m"], kind="stable"), np.argsort(persistence, kind="stable"))
    assert np.allclose(scores["naive-1m"], np.round(np.expm1(split.X_test[:, split.feature_names.index("count_lag1")])))


def test_evaluation_agrees_with_hotspot_metrics(split, counts):
    areas = make_areas(N_AREAS)
    # True intensity: here simply the area's mean count (a constant map per area).
    table = pd.DataFrame({"LSOA code": np.tile(split.test_areas[split.test_months == "2024-01"], 4), "month": np.repeat(MONTHS[-4:], N_AREAS)})
    table["expected"] = counts.mean(axis=1)[pd.Index([f"E01{i:06d}" for i in range(N_AREAS)]).get_indexer(table["LSOA code"])]
    result = evaluate_baselines({"A": split}, areas, table, {"persistence": {"A": persistence_scores(split)}}, coverages=(0.01, 0.1), replicates=200)
    reference = hotspot_metrics(split, persistence_scores(split), table)
    at_share = result.pooled["persistence"]["10%"]
    assert at_share["pai"].value == pytest.approx(reference["pai"])
    assert at_share["hit_rate"].value == pytest.approx(reference["hit_rate"])
    assert result.pooled["oracle"]["10%"]["pai"].value == pytest.approx(reference["pai_oracle"])
    assert result.pooled["naive-1m"]["10%"]["pai"].value == pytest.approx(reference["pai"])
    assert result.per_agency["A"]["kde"]["1%"]["pai"].value == result.pooled["kde"]["1%"]["pai"].value
    for estimates in result.pooled.values():
        for by_metric in estimates.values():
            for e in by_metric.values():
                assert e.value is None or e.low is None or e.low - 1e-9 <= e.value <= e.high + 1e-9
    assert result.reference in {"naive-1m", "naive-3m", "naive-12m"}
    assert result.reference not in result.vs_reference and "oracle" in result.vs_reference
    assert result.sentence.startswith("At 10% of areas") or result.sentence.startswith("At 1% of areas")
    assert result.flagged_share["1%"] == pytest.approx(1 / N_AREAS)  # one area is the least
    gap = 1 - result.pooled[result.reference]["1%"]["pai"].value / result.pooled["oracle"]["1%"]["pai"].value  # 1%: the first coverage given
    assert any(n.startswith(f"The best naive map is {100 * gap:.1f}% below the oracle") for n in result.notes)
    data = json.loads(json.dumps(result.as_dict()))  # plain JSON for summary.json
    assert data["pooled"]["kde"]["10%"]["pei_star"].keys() == {"value", "low", "high"}
    assert data["bootstrap"]["months"] == MONTHS[-4:]
    # The coverage curves pass through the table's points (10% is a curve point).
    curve = data["curves"]
    at10 = curve["coverages"].index(0.1)
    assert curve["pooled"]["kde"][at10] == pytest.approx(result.pooled["kde"]["10%"]["pai"].value)
    assert curve["per_agency"]["A"]["persistence"][at10] == pytest.approx(reference["pai"])
    assert data["sepp"]["A"]["converged"] and data["sepp"]["A"]["branching_ratio"] >= 0
    assert data["dp_cost"]["naive-1m"]["as_computed_here"].startswith("ε = ∞")
    assert data["dp_cost"]["oracle"]["as_computed_here"].startswith("n/a")


def test_sepp_is_fitted_on_training_months_only(split, counts):
    areas = make_areas(N_AREAS)
    table = counts_from_split(split)
    distances = centroid_distances(split, table.codes, areas)
    first_test = MONTHS.index("2024-01")
    expected = forecast(fit_sepp(counts[:, :first_test], distances), counts, distances)
    scores = baseline_scores(split, areas)["sepp"]
    rows = split.test_months == "2024-02"
    assert scores[rows] == pytest.approx(expected[:, first_test + 1])
    # Changing the last month's counts cannot change any forecast (it is never used).
    changed = counts.copy()
    changed[:, -1] += 5
    assert sepp_map(changed, distances, first_test)[0][:, :-1] == pytest.approx(sepp_map(counts, distances, first_test)[0][:, :-1])


def test_pooled_sums_agencies(split):
    areas = make_areas(N_AREAS)
    one = evaluate_baselines({"A": split}, areas, coverages=(0.1,), replicates=50)
    two = evaluate_baselines({"A": split, "A2": split}, areas, coverages=(0.1,), replicates=50)
    # The same agency twice: pooled ratios of sums are unchanged.
    assert two.pooled["kde"]["10%"]["pai"].value == pytest.approx(one.pooled["kde"]["10%"]["pai"].value)
    assert "oracle" not in one.pooled


def test_bad_model_scores_are_refused(split):
    with pytest.raises(ValueError, match="model 'm' has scores for"):
        evaluate_baselines({"A": split}, make_areas(N_AREAS), models={"m": {"B": np.zeros(3)}})
    with pytest.raises(ValueError, match="3 scores for"):
        evaluate_baselines({"A": split}, make_areas(N_AREAS), models={"m": {"A": np.zeros(3)}})
    with pytest.raises(ValueError, match="coverages"):
        evaluate_baselines({"A": split}, make_areas(N_AREAS), coverages=(0.0,))


def test_dp_counts_baseline():
    counts = np.full((200, 50), 10)
    noisy = noisy_counts(counts, 0.5, 0, "A")
    # Laplace of scale 1/ε = 2: mean 0, variance 2 / ε² = 8.
    assert (noisy - counts).mean() == pytest.approx(0, abs=0.1)
    assert (noisy - counts).var() == pytest.approx(8, rel=0.1)
    assert np.array_equal(noisy, noisy_counts(counts, 0.5, 0, "A"))  # seeded: a measurement
    assert not np.array_equal(noisy, noisy_counts(counts, 0.5, 0, "B"))
    with pytest.raises(ValueError, match="ε > 0"):
        noisy_counts(counts, 0.0, 0, "A")
    assert dp_cost("naive-3m-dp", 1.0)["as_computed_here"].startswith("ε = 1 per incident record")


def test_evaluation_adds_the_dp_counts_map(split):
    result = evaluate_baselines({"A": split}, make_areas(N_AREAS), coverages=(0.1,), replicates=50, dp_epsilon=1.0)
    assert "naive-3m-dp" in result.baselines and result.dp_epsilon == 1.0
    none = evaluate_baselines({"A": split}, make_areas(N_AREAS), coverages=(0.1,), replicates=50, dp_epsilon=None)
    assert "naive-3m-dp" not in none.baselines
