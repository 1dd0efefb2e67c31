"""tasks.hotspot: examples, features, labels and the split on small hand-built agencies, and the
record-influence bound checked by brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policedata.synthetic import month_range
from tasks.hotspot import (
    LAGS,
    build_hotspot_split,
    feature_names,
    hotspot_k,
    nearest_neighbours,
    record_influence,
    tie_priority,
    top_k_labels,
)

TYPES = ("Burglary", "Shoplifting", "Drugs", "Violence and sexual offences")


def make_areas(n: int, seed: int = 0, hub: bool = False) -> pd.DataFrame:
    """``n`` areas of agency "A" (on a line, or a hub with a ring around it) plus 3 of agency "B"."""
    rng = np.random.default_rng(seed)
    if hub:
        angle = np.linspace(0, 2 * np.pi, n - 1, endpoint=False)
        lon = np.r_[0.0, 0.01 * np.cos(angle)] - 1.5
        lat = np.r_[0.0, 0.006 * np.sin(angle)] + 52.5
    else:  # a line west to east, 0.01° apart: neighbours are obvious
        lon, lat = -1.5 + 0.01 * np.arange(n), np.full(n, 52.5)
    codes = [f"E01{i:06d}" for i in range(n)]
    mine = pd.DataFrame({
        "LSOA code": codes,
        "LSOA name": codes,
        "Longitude": lon,
        "Latitude": lat,
        "deprivation": rng.uniform(0.05, 0.95, n).round(3),
        "night_economy": rng.uniform(0, 1, n).round(3),
        "population": rng.integers(1000, 2000, n),
        "agency": "A",
    })
    other = pd.DataFrame({
        "LSOA code": ["E02000001", "E02000002", "E02000003"],
        "LSOA name": ["B1", "B2", "B3"],
        "Longitude": [0.1, 0.2, 0.3],
        "Latitude": [51.0, 51.1, 51.2],
        "deprivation": [0.1, 0.5, 0.9],
        "night_economy": [0.0, 0.5, 1.0],
        "population": [1500, 1600, 1700],
        "agency": "B",
    })
    return pd.concat([mine, other], ignore_index=True)


def records_from_counts(counts: np.ndarray, months: list[str], types: np.ndarray | None = None) -> pd.DataFrame:
    """One record per incident of counts[area, month] (areas E01000000...), of crime type
    types[area, month] (default: cycling through TYPES)."""
    rows = []
    for a, t in zip(*np.nonzero(counts), strict=True):
        for j in range(counts[a, t]):
            kind = TYPES[j % len(TYPES)] if types is None else types[a, t]
            rows.append((months[t], f"E01{a:06d}", kind))
    frame = pd.DataFrame(rows, columns=["month", "lsoa_code", "crime_type"])
    frame["agency"] = "A"
    return frame


def column(split, name: str, test: bool = False) -> np.ndarray:
    X = split.X_test if test else split.X_train
    return X[:, split.feature_names.index(name)]


MONTHS = month_range("2023-01", 15)


@pytest.fixture(scope="module")
def line() -> dict:
    """6 areas on a line, 15 months of seeded counts; test label months 2024-01..2024-03."""
    rng = np.random.default_rng(7)
    counts = rng.poisson(3, (6, len(MONTHS)))
    records = records_from_counts(counts, MONTHS)
    split = build_hotspot_split(records, make_areas(6), "2024-01", share=0.34)
    return {"counts": counts, "records": records, "split": split}


# ---------------------------------------------------------------- layout and split


def test_examples_cover_every_area_and_month_with_a_next_month(line):
    split, counts = line["split"], line["counts"]
    n_areas = 6
    # label months 2023-02..2024-03 (14): 11 before 2024-01 train, 3 test
    assert split.counts["n_areas"] == n_areas and split.k == 2  # round(0.34 * 6) = 2
    assert split.X_train.shape == (11 * n_areas, len(feature_names(LAGS)))
    assert split.X_test.shape == (3 * n_areas, len(feature_names(LAGS)))
    assert split.X_train.dtype == split.y_train.dtype == split.X_test.dtype == np.float32
    assert split.feature_names == feature_names(LAGS)
    assert split.counts["n_train"] == 66 and split.counts["n_test"] == 18
    assert split.counts["rows_total"] == counts.sum()
    assert split.counts["positives_train"] == split.y_train.sum()
    # test rows: month-major, areas sorted, actual counts of the label month
    assert list(split.test_months) == ["2024-01"] * 6 + ["2024-02"] * 6 + ["2024-03"] * 6
    assert list(split.test_areas[:6]) == [f"E01{a:06d}" for a in range(6)]
    np.testing.assert_array_equal(split.test_next_counts, counts[:, 12:15].T.reshape(-1))
    areas = make_areas(6)
    np.testing.assert_allclose(split.test_deprivation[:6], areas["deprivation"][:6])
    assert split.agency == "A"


def test_lag_features_and_missing_flags(line):
    split, counts = line["split"], line["counts"]
    n = 6
    X = pd.DataFrame(split.X_train, columns=split.feature_names)
    for m in range(11):  # example month m (label m+1)
        for a in range(n):
            row = X.iloc[m * n + a]
            assert row["count_lag1"] == pytest.approx(np.log1p(counts[a, m]))
            assert row["count_lag2"] == pytest.approx(np.log1p(counts[a, m - 1]) if m >= 1 else 0.0)
            assert row["count_lag3"] == pytest.approx(np.log1p(counts[a, m - 2]) if m >= 2 else 0.0)
            assert row["count_lag12"] == pytest.approx(np.log1p(counts[a, m - 11]) if m >= 11 else 0.0)
            assert row["lag2_missing"] == (m < 1) and row["lag3_missing"] == (m < 2)
            assert row["lag12_missing"] == (m < 11)
    # the last test example (m = 13) sees lag 12 = month 2
    last = pd.DataFrame(split.X_test, columns=split.feature_names).iloc[-1]
    assert last["count_lag12"] == pytest.approx(np.log1p(counts[5, 2])) and last["lag12_missing"] == 0


def test_neighbour_mean_on_a_line():
    counts = np.zeros((8, 3), dtype=int)
    counts[:, 0] = [1, 2, 3, 4, 5, 6, 7, 8]
    counts[:, 1] = [8, 0, 0, 0, 0, 0, 0, 0]
    records = records_from_counts(counts, MONTHS[:3])
    split = build_hotspot_split(records, make_areas(8), "2023-03", n_neighbours=2, period=(MONTHS[0], MONTHS[2]))
    X = pd.DataFrame(split.X_train, columns=split.feature_names)  # label month 2023-02 only
    # area 0's two nearest are 1 and 2; area 3's are 2 and 4 (equal distances: lower index first)
    assert X["neighbours_lag1"][0] == pytest.approx(np.log1p((2 + 3) / 2))
    assert X["neighbours_lag1"][3] == pytest.approx(np.log1p((3 + 5) / 2))
    assert X["neighbours_lag1"][7] == pytest.approx(np.log1p((7 + 6) / 2))
    assert (X["neighbours_lag2"] == 0).all() and (X["lag2_missing"] == 1).all()
    T = pd.DataFrame(split.X_test, columns=split.feature_names)  # example month 2023-02
    assert T["neighbours_lag1"][1] == pytest.approx(np.log1p((8 + 0) / 2))
    assert T["neighbours_lag2"][1] == pytest.approx(np.log1p((1 + 3) / 2))


def test_nearest_neighbours_ties_and_small_agencies():
    lon, lat = np.array([0.0, 1.0, -1.0, 0.0]), np.array([0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(nearest_neighbours(lon, lat, 2)[0], [1, 2])  # tie: lower index
    assert nearest_neighbours(lon, lat, 10).shape == (4, 3)
    assert nearest_neighbours(lon[:1], lat[:1], 5).shape == (1, 0)


def test_crime_mix_over_the_last_three_months():
    counts = np.zeros((6, 5), dtype=int)
    types = np.full((6, 5), "Burglary", dtype=object)
    counts[0, :4] = [2, 1, 1, 2]
    types[0, :4] = ["Drugs", "Robbery", "Shoplifting", "Made-up type"]
    records = records_from_counts(counts, MONTHS[:5], types)
    split = build_hotspot_split(records, make_areas(6), "2099-01", period=(MONTHS[0], MONTHS[4]))
    X = pd.DataFrame(split.X_train, columns=split.feature_names)
    n = 6
    first, fourth = X.iloc[0], X.iloc[3 * n]  # area 0 at m=0 (window: month 0) and m=3 (months 1..3)
    assert first[["mix:disorder", "mix:violence", "mix:theft", "mix:property"]].tolist() == [1, 0, 0, 0]
    # months 1..3: 1 robbery, 1 shoplifting, 2 of an unknown type -> total 4
    assert fourth["mix:violence"] == pytest.approx(0.25) and fourth["mix:theft"] == pytest.approx(0.25)
    assert fourth["mix:disorder"] == 0 and fourth["mix:property"] == 0
    assert (X.iloc[1][[c for c in X.columns if c.startswith("mix:")]] == 0).all()  # no incident


def test_public_covariates_and_month_of_year(line):
    split = line["split"]
    X = pd.DataFrame(split.X_train, columns=split.feature_names)
    table = make_areas(6).drop_duplicates("LSOA code")
    dep = table["deprivation"]
    expected = (dep - dep.mean()) / dep.std(ddof=0)  # standardised over the whole table (A and B)
    np.testing.assert_allclose(X["area_deprivation"][:6], expected[:6], rtol=1e-5)
    # first example's label month is 2023-02
    assert X["month_sin"][0] == pytest.approx(np.sin(2 * np.pi / 12))
    assert X["month_cos"][0] == pytest.approx(np.cos(2 * np.pi / 12))


def test_result_does_not_depend_on_row_order(line):
    records, areas = line["records"], make_areas(6)
    shuffled_records, shuffled_areas = records.sample(frac=1, random_state=1), areas.sample(frac=1, random_state=2)
    again = build_hotspot_split(shuffled_records, shuffled_areas, "2024-01", share=0.34)
    split = line["split"]
    np.testing.assert_array_equal(again.X_train, split.X_train)
    np.testing.assert_array_equal(again.y_train, split.y_train)
    np.testing.assert_array_equal(again.X_test, split.X_test)


def test_training_rows_see_nothing_of_the_test_months(line):
    records, split = line["records"], line["split"]
    changed = records.copy()
    in_test = changed["month"] >= "2024-01"
    changed.loc[in_test, "crime_type"] = "Robbery"
    extra = pd.DataFrame({"month": ["2024-02"] * 50, "lsoa_code": "E01000003", "crime_type": "Drugs", "agency": "A"})
    other = build_hotspot_split(pd.concat([changed, extra], ignore_index=True), make_areas(6), "2024-01", share=0.34)
    np.testing.assert_array_equal(other.X_train, split.X_train)
    np.testing.assert_array_equal(other.y_train, split.y_train)
    assert not np.array_equal(other.X_test, split.X_test)


def test_records_outside_the_agency_or_period_are_counted_not_placed(line):
    records = line["records"]
    extra = pd.DataFrame({
        "month": ["2023-05", "2023-05", "2023-05", "2022-12"],
        "lsoa_code": ["", "E02000001", "E09999999", "E01000000"],
        "crime_type": "Drugs",
        "agency": "A",
    })
    split = build_hotspot_split(
        pd.concat([records, extra], ignore_index=True), make_areas(6), "2024-01", share=0.34, period=(MONTHS[0], MONTHS[-1])
    )
    assert split.counts["rows_unknown_area"] == 3 and split.counts["rows_outside_period"] == 1
    np.testing.assert_array_equal(split.X_train, line["split"].X_train)


# ---------------------------------------------------------------- labels


def test_labels_are_the_top_k_with_exactly_k_on_ties():
    counts = np.zeros((10, 4), dtype=int)
    counts[:, 1] = [5, 9, 1, 0, 7, 0, 0, 3, 2, 0]  # top 3: areas 1, 4, 0
    counts[:, 2] = [4, 4, 4, 4, 1, 0, 0, 0, 0, 0]  # four-way tie for 3 places
    counts[:, 3] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # one area with any incident: one positive
    records = records_from_counts(counts, MONTHS[:4])
    split = build_hotspot_split(records, make_areas(10), "2099-01", share=0.25, period=(MONTHS[0], MONTHS[3]))
    assert split.k == 3  # 0.25 * 10 = 2.5 rounds half up
    y = split.y_train.reshape(3, 10)
    assert np.flatnonzero(y[0]).tolist() == [0, 1, 4]
    assert y[1].sum() == 3 and set(np.flatnonzero(y[1])) < {0, 1, 2, 3}
    assert np.flatnonzero(y[2]).tolist() == [0]


def test_k_rounds_half_up():
    assert [hotspot_k(0.05, n) for n in (1, 10, 20, 29, 30, 31, 640)] == [1, 1, 1, 1, 2, 2, 32]
    assert hotspot_k(0.15, 10) == 2 and hotspot_k(0.25, 10) == 3 and hotspot_k(1.0, 7) == 7


def test_all_zero_month_has_no_positive():
    counts = np.zeros((6, 3), dtype=int)
    counts[:, 0] = 2
    split = build_hotspot_split(records_from_counts(counts, MONTHS[:3]), make_areas(6), "2099-01", period=(MONTHS[0], MONTHS[2]))
    assert split.counts["n_train"] == 12 and split.y_train.sum() == 0


def test_tie_order_is_fixed_and_varies_by_month():
    codes, months = [f"E01{i:06d}" for i in range(50)], MONTHS[:6]
    priority = tie_priority(codes, months)
    np.testing.assert_array_equal(priority, tie_priority(codes, months))
    assert len(np.unique(priority)) == priority.size
    winners = {int(np.argmax(priority[:, m])) for m in range(6)}
    assert len(winners) > 1  # no area wins every month's ties


@pytest.mark.parametrize("seed", range(20))
def test_one_more_incident_changes_at_most_two_labels(seed):
    rng = np.random.default_rng(seed)
    counts, priority = rng.poisson(1.0, 12), rng.permutation(12).astype(np.uint64)
    base = top_k_labels(counts, priority, 3)
    for a in range(12):
        more = counts.copy()
        more[a] += 1
        assert (top_k_labels(more, priority, 3) != base).sum() <= 2


# ---------------------------------------------------------------- DP: record influence


def hub_agency(seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """9 areas (a hub inside a ring: everyone's neighbour), 16 months, Poisson counts."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2, (9, 16))
    types = rng.choice(np.array(TYPES, dtype=object), size=(9, 16))
    return records_from_counts(counts, month_range("2023-01", 16), types), make_areas(9, hub=True), counts


def test_record_influence_formula():
    # lags 1,2,3,12 and a 3-month mix: offsets {0,1,2,11}; 2 neighbour lags x 7 areas; 2 labels
    assert record_influence((1, 2, 3, 12), 5, 7) == 4 + 14 + 2
    assert record_influence((1,), 0, 0, mix_months=1) == 1 + 0 + 2
    assert record_influence((1, 6), 5, 3, mix_months=3) == 4 + 6 + 2


@pytest.mark.parametrize("change", ["add", "remove"])
def test_record_influence_bounds_changed_training_rows_by_brute_force(change):
    records, areas, counts = hub_agency()
    months = month_range("2023-01", 16)
    kwargs = dict(test_from=months[-2], share=0.25, period=(months[0], months[-1]))
    base = build_hotspot_split(records, areas, **kwargs)
    assert base.record_influence == record_influence(LAGS, 5, 8)  # the hub is all 8 others' neighbour
    worst = worst_features = worst_labels = 0
    for a in range(9):
        for t in range(16):
            if change == "add":
                one = pd.DataFrame({"month": [months[t]], "lsoa_code": [f"E01{a:06d}"], "crime_type": ["Robbery"], "agency": "A"})
                changed = pd.concat([records, one], ignore_index=True)
            else:
                rows = np.flatnonzero((records["month"] == months[t]) & (records["lsoa_code"] == f"E01{a:06d}"))
                if not len(rows):
                    continue
                changed = records.drop(index=rows[0])
            split = build_hotspot_split(changed, areas, **kwargs)
            features = (split.X_train != base.X_train).any(axis=1)
            labels = split.y_train != base.y_train
            worst = max(worst, int((features | labels).sum()))
            worst_features, worst_labels = max(worst_features, int(features.sum())), max(worst_labels, int(labels.sum()))
    assert worst <= base.record_influence
    # each part of the bound is reached: features 4 own + 2 x 8 neighbours' rows, labels 2
    assert worst_features == base.record_influence - 2
    assert worst_labels == 2


def test_one_record_reaches_the_whole_record_influence():
    # g is the true maximum, not just a bound: a record of the hub (everyone's neighbour) in a
    # month where it ties for the last top-k place changes its 4 own rows (lags 1, 2, 3, 12 and the
    # 3-month mix), 2 × 8 neighbours' rows and 2 labels at once.
    months = month_range("2023-01", 16)
    counts = np.full((9, 16), 3)
    counts[:, 1] = [4, 9, 4, 1, 1, 1, 1, 1, 1]  # k = 2: area 1, then the hub and area 2 tie
    records, areas = records_from_counts(counts, months), make_areas(9, hub=True)
    kwargs = dict(test_from=months[14], share=0.25, period=(months[0], months[-1]))
    base = build_hotspot_split(records, areas, **kwargs)
    assert base.record_influence == 4 + 2 * 8 + 2
    one = pd.DataFrame({"month": [months[1]], "lsoa_code": ["E01000000"], "crime_type": ["Robbery"], "agency": "A"})
    hub_rows = np.flatnonzero((records["month"] == months[1]) & (records["lsoa_code"] == "E01000000"))
    changed = []
    for variant in (pd.concat([records, one], ignore_index=True), records.drop(index=hub_rows[0])):
        split = build_hotspot_split(variant, areas, **kwargs)
        changed.append(int(((split.X_train != base.X_train).any(axis=1) | (split.y_train != base.y_train)).sum()))
    assert max(changed) == base.record_influence  # whichever way the tie goes, add or remove wins it


def test_a_record_in_an_unknown_area_changes_nothing():
    records, areas, _ = hub_agency()
    base = build_hotspot_split(records, areas, "2024-04")
    one = pd.DataFrame({"month": ["2023-06"], "lsoa_code": [""], "crime_type": ["Drugs"], "agency": "A"})
    split = build_hotspot_split(pd.concat([records, one], ignore_index=True), areas, "2024-04")
    np.testing.assert_array_equal(split.X_train, base.X_train)
    np.testing.assert_array_equal(split.y_train, base.y_train)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(test_from="2024-13"), "not a 'YYYY-MM' month"),
        (dict(share=0.0), "share=0.0 must be in"),
        (dict(lags=(2, 3)), "must include 1"),
        (dict(lags=(0, 1)), "positive month counts"),
        (dict(areas=None), "needs the public areas table"),
        (dict(agency="Nowhere"), "no rows whose agency is 'Nowhere'"),
        (dict(period=("2023-01", "2023-01")), "at least two months"),
    ],
)
def test_bad_arguments_raise_one_clear_line(line, kwargs, message):
    arguments = dict(records=line["records"], areas=make_areas(6), test_from="2024-01")
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_hotspot_split(**arguments)


def test_records_of_two_agencies_are_refused(line):
    records = line["records"].copy()
    records.loc[0, "agency"] = "B"
    with pytest.raises(ValueError, match="one agency's"):
        build_hotspot_split(records, make_areas(6), "2024-01")
    # naming the agency is enough: the other agency's rows fall outside its areas
    split = build_hotspot_split(records, make_areas(6), "2024-01", agency="A")
    assert split.counts["n_areas"] == 6


def test_an_areas_table_without_agency_column_is_the_agencys_own(line):
    areas = make_areas(6).iloc[:6].drop(columns="agency")
    split = build_hotspot_split(line["records"], areas, "2024-01")
    assert split.counts["n_areas"] == 6 and split.X_train.shape[0] == 66
