"""The audit holdout end to end (clients.agency.hold_out_for_audit on real splits): each record's
role depends on its own key, so one record more or less changes no other record's role."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clients.agency import hold_out_for_audit
from privacy.audit.mia import holdout_key
from tasks.hotspot import build_hotspot_split
from tasks.outcome import build_outcome_split, record_keys

CRIME_TYPES = ["Burglary", "Shoplifting", "Drugs", "Robbery", "Vehicle crime"]
OUTCOMES = ["Investigation complete; no suspect identified", "Offender given a caution", "Under investigation"]


def records(n: int, seed: int = 0, missing_ids: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "crime_id": [f"id{seed}-{i:05d}" for i in range(n)],
            "month": [f"2023-{m:02d}" for m in rng.integers(1, 13, n)],
            "longitude": rng.uniform(-2.0, -1.6, n).round(6),
            "latitude": rng.uniform(52.4, 52.5, n).round(6),
            "lsoa_code": rng.choice(["E01", "E02", "E03"], n),
            "crime_type": rng.choice(CRIME_TYPES, n),
            "outcome": rng.choice(OUTCOMES, n),
        }
    )
    frame.loc[: missing_ids - 1, "crime_id"] = ""  # police.uk leaves some IDs empty
    frame["reported_by"] = frame["falls_within"] = "Test Police"
    frame["location"] = [f"On or near street {i}" for i in range(n)]
    frame["lsoa_name"] = frame["context"] = ""
    frame["agency"] = "test"
    return frame


def roles(frame: pd.DataFrame, key: bytes) -> dict[str, bool]:
    """Training record key -> held out?"""
    split = build_outcome_split(frame, None, ["Offender given a caution"], "2023-11")
    audit = hold_out_for_audit(split, 0.2, key)
    held_keys = set(split.train_keys) - set(audit.train_keys)
    assert len(audit.y_holdout) == len(held_keys) and len(audit.y_train) == len(audit.train_keys)
    return {k: k in held_keys for k in split.train_keys}


@pytest.mark.parametrize("change", ["add with id", "add without id", "remove"])
def test_one_record_more_or_less_changes_no_other_training_records_role(change):
    base = records(3000, missing_ids=40)
    key = holdout_key(0, "Test Police")
    before = roles(base, key)
    assert len(before) == len(set(before)) > 2000  # keys are unique here, ids or not
    if change == "remove":
        changed = base.drop(index=1500)
    else:
        extra = records(1, seed=9, missing_ids=1 if change == "add without id" else 0).assign(month="2023-05")
        changed = pd.concat([base.iloc[:1000], extra, base.iloc[1000:]], ignore_index=True)
    after = roles(changed, key)
    common = before.keys() & after.keys()
    assert len(common) >= len(before) - 1
    assert all(before[k] == after[k] for k in common)
    assert 0.15 < np.mean(list(before.values())) < 0.25


def test_records_without_an_id_get_a_key_from_their_own_fields():
    frame = records(5, missing_ids=2)
    keys = record_keys(frame)
    assert keys[2].startswith("id:") and keys[0].startswith("rec:") and keys[0] != keys[1]
    # the key of a record without an id does not depend on its neighbours or its position
    assert record_keys(frame.iloc[[1, 0]].reset_index(drop=True))[1] == keys[0]
    assert record_keys(frame.iloc[[0]].assign(location="elsewhere"))[0] != keys[0]


def test_hotspot_examples_are_held_out_by_area_and_month():
    rng = np.random.default_rng(0)
    codes = [f"E01{i:06d}" for i in range(12)]
    areas = pd.DataFrame(
        {"LSOA code": codes, "Longitude": rng.uniform(-2, -1.9, 12), "Latitude": rng.uniform(52.4, 52.5, 12),
         "deprivation": rng.uniform(0, 1, 12), "night_economy": rng.uniform(0, 1, 12), "population": 1500}
    )
    frame = pd.DataFrame({"month": [f"2023-{m:02d}" for m in rng.integers(1, 13, 800)], "lsoa_code": rng.choice(codes, 800),
                          "crime_type": rng.choice(CRIME_TYPES, 800), "agency": "A"})
    split = build_hotspot_split(frame, areas, "2023-10", period=("2023-01", "2023-12"))
    assert len(split.train_keys) == len(split.y_train) == len(set(split.train_keys))
    assert all(k.endswith("|" + m) for k, m in zip(split.train_keys, split.train_months, strict=True))
    audit = hold_out_for_audit(split, 0.25, holdout_key(0, "A"))
    assert len(audit.y_train) + len(audit.y_holdout) == len(split.y_train)
    # the same example keeps its role whatever else is in the split (keys are public: area|month)
    again = hold_out_for_audit(build_hotspot_split(frame.iloc[:400], areas, "2023-10", period=("2023-01", "2023-12")), 0.25, holdout_key(0, "A"))
    np.testing.assert_array_equal(again.train_keys, audit.train_keys)
