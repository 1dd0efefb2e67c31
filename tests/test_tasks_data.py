"""tasks.features and tasks.outcome on small hand-built records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policedata.schema import NO_SUSPECT
from tasks import features
from tasks.features import FEATURE_NAMES, N_FEATURES, OUTCOME_CRIME_TYPES, encode
from tasks.outcome import build_outcome_split

CAUTION = "Offender given a caution"


def make_records() -> pd.DataFrame:
    rows = [
        # crime_id, month, lon, lat, lsoa_code, crime_type, outcome
        ("c1", "2023-01", -1.9, 52.48, "E01", "Burglary", NO_SUSPECT),
        ("c2", "2023-02", -1.8, 52.50, "E02", "Shoplifting", CAUTION),
        ("", "2023-03", -1.7, 52.40, "E01", "Anti-social behaviour", ""),
        ("c4", "2023-06", np.nan, np.nan, "", "Drugs", CAUTION),
        ("c5", "2023-07", -1.6, 52.45, "E99", "Robbery", "Under investigation"),
        ("c6", "2023-12", -1.9, 52.47, "E02", "Vehicle crime", CAUTION),
        ("c7", "2024-01", -2.0, 52.49, "E01", "Bicycle theft", NO_SUSPECT),
        ("", "2024-02", np.nan, np.nan, "", "Anti-social behaviour", ""),
        ("c9", "2024-03", -1.85, 52.51, "E02", "Made-up type", CAUTION),
    ]
    frame = pd.DataFrame(
        rows, columns=["crime_id", "month", "longitude", "latitude", "lsoa_code", "crime_type", "outcome"]
    )
    frame["reported_by"] = frame["falls_within"] = "West Midlands Police"
    frame["location"] = frame["lsoa_name"] = frame["context"] = ""
    frame["agency"] = "west-midlands"
    return frame


def make_areas() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "LSOA code": ["E01", "E02", "E03"],
            "LSOA name": ["A 001", "A 002", "A 003"],
            "Longitude": [-1.9, -1.8, -1.5],
            "Latitude": [52.48, 52.50, 52.60],
            "deprivation": [0.2, 0.8, 0.5],
            "night_economy": [0.1, 0.9, 0.4],
            "population": [1500, 1800, 1600],
        }
    )


# ---------------------------------------------------------------- features


def test_feature_names_are_fixed():
    assert N_FEATURES == len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 23
    assert len(OUTCOME_CRIME_TYPES) == 13 and "Anti-social behaviour" not in OUTCOME_CRIME_TYPES
    assert FEATURE_NAMES[13] == "crime_type:unknown"
    assert FEATURE_NAMES[-1] == "unknown_area"


@pytest.mark.parametrize("areas", [None, make_areas()], ids=["no-areas", "areas"])
@pytest.mark.parametrize("rows", [slice(0, 0), slice(0, 1), slice(2, 5), slice(None)])
def test_width_is_the_same_for_any_records_and_areas(areas, rows):
    X = encode(make_records().iloc[rows], areas)
    assert X.dtype == np.float32
    assert X.shape == (len(make_records().iloc[rows]), N_FEATURES)


@pytest.mark.parametrize("areas", [None, make_areas()], ids=["no-areas", "areas"])
def test_a_row_encodes_the_same_alone_as_within_any_frame(areas):
    records = make_records()
    whole = encode(records, areas)
    for i in range(len(records)):
        np.testing.assert_array_equal(encode(records.iloc[[i]], areas)[0], whole[i])
    # ...and whatever else is in the frame (here: the rows reversed, and a row changed)
    np.testing.assert_array_equal(encode(records.iloc[::-1], areas)[::-1], whole)
    changed = records.copy()
    changed.loc[0, ["latitude", "longitude", "crime_type"]] = [60.0, 1.0, "Drugs"]
    np.testing.assert_array_equal(encode(changed, areas)[1:], whole[1:])


def test_crime_type_one_hot_and_unknown_slot():
    X = encode(make_records(), None)
    one_hot = X[:, : len(OUTCOME_CRIME_TYPES) + 1]
    assert (one_hot.sum(axis=1) == 1).all()
    assert X[0, FEATURE_NAMES.index("crime_type:Burglary")] == 1
    unknown = FEATURE_NAMES.index("crime_type:unknown")
    assert X[[2, 7, 8], unknown].tolist() == [1, 1, 1]  # anti-social behaviour and a made-up type


def test_month_of_year_is_cyclic():
    X = encode(make_records(), None)
    sin, cos = X[:, features.column("month_sin")], X[:, features.column("month_cos")]
    np.testing.assert_allclose([sin[0], cos[0]], [0, 1], atol=1e-6)  # January
    np.testing.assert_allclose([sin[3], cos[3]], [0.5, -np.sqrt(3) / 2], atol=1e-6)  # June
    np.testing.assert_array_equal(X[0, 14:16], X[6, 14:16])  # January of another year


def test_location_uses_fixed_constants_without_areas_and_flags_missing():
    X = encode(make_records(), None)
    lat, lon, flag = (features.column(c) for c in ("latitude", "longitude", "no_location"))
    np.testing.assert_allclose(X[0, [lat, lon]], [(52.48 - 52.5) / 1.5, (-1.9 + 1.5) / 1.5], rtol=1e-5)
    assert X[:, flag].tolist() == [0, 0, 0, 1, 0, 0, 0, 1, 0]
    assert (X[[3, 7]][:, [lat, lon]] == 0).all()


def test_location_uses_the_areas_table_centroids():
    areas = make_areas()
    X = encode(make_records(), areas)
    lat = areas["Latitude"]
    expected = (52.48 - lat.mean()) / lat.std(ddof=0)
    assert X[0, features.column("latitude")] == pytest.approx(expected, rel=1e-5)


def test_area_covariates_join_on_lsoa_code():
    areas = make_areas()
    X = encode(make_records(), areas)
    names = ["area_deprivation", "area_night_economy", "area_log_population"]
    area = X[:, [features.column(c) for c in names]]
    unknown = X[:, features.column("unknown_area")]
    assert unknown.tolist() == [0, 0, 0, 1, 1, 0, 0, 1, 0]  # "" and E99 are not in the table
    assert (area[unknown == 1] == 0).all()
    dep = areas["deprivation"]
    assert area[1, 0] == pytest.approx((0.8 - dep.mean()) / dep.std(ddof=0), rel=1e-5)
    log_pop = np.log1p(areas["population"])
    assert area[0, 2] == pytest.approx((np.log1p(1500) - log_pop.mean()) / log_pop.std(ddof=0), rel=1e-5)


def test_without_areas_every_area_is_unknown():
    X = encode(make_records(), None)
    assert (X[:, features.column("unknown_area")] == 1).all()
    assert (X[:, -4:-1] == 0).all()


def test_duplicate_area_rows_and_missing_columns():
    areas = make_areas()
    doubled = pd.concat([areas.assign(agency="a"), areas.assign(agency="b")], ignore_index=True)
    np.testing.assert_array_equal(encode(make_records(), doubled), encode(make_records(), areas))
    with pytest.raises(ValueError, match="deprivation"):
        encode(make_records(), areas.drop(columns="deprivation"))
    with pytest.raises(ValueError, match="lsoa_code"):
        encode(make_records().drop(columns="lsoa_code"), None)


def test_a_bad_month_is_named():
    records = make_records()
    records.loc[4, "month"] = "2023-13"
    with pytest.raises(ValueError, match=r"'2023-13' at row 4"):
        encode(records, None)


# ---------------------------------------------------------------- outcome split


def test_split_by_month_with_counts():
    split = build_outcome_split(make_records(), make_areas(), positive=[CAUTION], test_from="2023-12")
    assert split.counts == {
        "rows_total": 9,
        "rows_no_outcome": 2,
        "rows_no_location": 1,  # c4; the no-location ASB row is excluded before counting
        "rows_unknown_area": 2,  # c4 (""), c5 (E99)
        "n_train": 4,  # c1 c2 c4 c5
        "n_test": 3,  # c6 c7 c9
        "positives_train": 2,
        "positives_test": 2,
    }
    assert split.y_train.tolist() == [0, 1, 1, 0]
    assert split.y_test.tolist() == [1, 0, 1]
    assert split.test_crime_ids.tolist() == ["c6", "c7", "c9"]
    assert split.test_crime_types.tolist() == ["Vehicle crime", "Bicycle theft", "Made-up type"]
    assert split.X_train.shape == (4, N_FEATURES) and split.X_test.shape == (3, N_FEATURES)
    assert split.X_train.dtype == split.y_train.dtype == np.float32
    assert split.feature_names == list(FEATURE_NAMES)
    # rows keep the order of `records`, and their encoding is the row's own
    np.testing.assert_array_equal(split.X_test, encode(make_records().iloc[[5, 6, 8]], make_areas()))


def test_split_with_several_positive_outcomes_and_a_single_string():
    records = make_records()
    several = build_outcome_split(records, None, positive=[CAUTION, "Under investigation"], test_from="2024-01")
    assert several.y_train.tolist() == [0, 1, 1, 1, 1]
    single = build_outcome_split(records, None, positive=CAUTION, test_from="2024-01")
    assert single.y_train.tolist() == [0, 1, 1, 0, 1]


def test_split_edges():
    records = make_records()
    all_train = build_outcome_split(records, None, [CAUTION], test_from="2030-01")
    assert all_train.counts["n_test"] == 0 and all_train.X_test.shape == (0, N_FEATURES)
    assert all_train.test_crime_ids.shape == (0,)
    empty = build_outcome_split(records.iloc[:0], None, [CAUTION], test_from="2023-06")
    assert empty.counts["rows_total"] == empty.counts["n_train"] == 0
    with pytest.raises(ValueError, match="YYYY-MM"):
        build_outcome_split(records, None, [CAUTION], test_from="2023-6")
    with pytest.raises(ValueError, match="positive"):
        build_outcome_split(records, None, [], test_from="2023-06")
