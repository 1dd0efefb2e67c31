"""The ``outcome`` task: predict whether a crime ends in one of the ``positive`` outcomes.

Records without an outcome (e.g. anti-social behaviour) have nothing to learn from and are left
out; records without a location or a known area are kept and flagged by their features. The split
is by time: months from ``test_from`` on are held out, which is also how the model would be used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks import features


@dataclass
class OutcomeSplit:
    X_train: np.ndarray  # float32 (n_train, layout.width)
    y_train: np.ndarray  # float32 0/1
    X_test: np.ndarray
    y_test: np.ndarray
    test_crime_ids: np.ndarray  # str, aligned with the test rows
    test_crime_types: np.ndarray  # str
    feature_names: list[str]
    # rows_total, rows_no_outcome, rows_no_location, rows_unknown_area, n_train, n_test,
    # positives_train, positives_test; a city's own layout adds rows_unknown_category and
    # rows_outside_region (features.FeatureLayout)
    counts: dict[str, int]
    train_months: np.ndarray | None = None  # str "YYYY-MM", aligned with the training rows
    train_keys: np.ndarray | None = None  # str, each training record's own key (`record_keys`)
    # Training-period rows held out as non-members for the membership audit (audit: true).
    X_holdout: np.ndarray | None = None
    y_holdout: np.ndarray | None = None


def build_outcome_split(
    records: pd.DataFrame,
    areas: pd.DataFrame | None,
    positive: Sequence[str],
    test_from: str,
    layout: features.FeatureLayout = features.POLICE_UK,
) -> OutcomeSplit:
    """Label, encode (with ``layout``) and split ``records`` by month; row order follows
    ``records``. ``positive`` names outcome values as they appear in the records: police.uk
    categories, or a city's own values (e.g. "YES")."""
    positive = [positive] if isinstance(positive, str) else list(positive)
    if not positive:
        raise ValueError("outcome task: `positive` names no outcome category; give at least one.")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", str(test_from)):
        raise ValueError(f"outcome task: test_from {test_from!r} is not a 'YYYY-MM' month.")
    for column in ("crime_id", "outcome"):
        if column not in records.columns:
            raise ValueError(f"records lack column {column!r}; it has {list(records.columns)}.")

    outcome = records["outcome"].astype("string").fillna("")
    has_outcome = (outcome != "").to_numpy()
    kept = records[has_outcome]
    X = features.encode(kept, areas, layout)
    y = outcome[has_outcome].isin(positive).to_numpy(dtype=np.float32)
    # "YYYY-MM" strings order like the months they name.
    test = (kept["month"].astype("string") >= test_from).to_numpy(dtype=bool)
    train = ~test

    counts = {
        "rows_total": len(records),
        "rows_no_outcome": int((~has_outcome).sum()),
        **_flag_counts(X, layout),
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
        "positives_train": int(y[train].sum()),
        "positives_test": int(y[test].sum()),
    }
    return OutcomeSplit(
        X_train=X[train],
        y_train=y[train],
        X_test=X[test],
        y_test=y[test],
        test_crime_ids=_as_str(kept["crime_id"][test]),
        test_crime_types=_as_str(kept["crime_type"][test]),
        feature_names=list(layout.names),
        counts=counts,
        train_months=_as_str(kept["month"][train]),
        train_keys=record_keys(kept[train]),
    )


def _flag_counts(X: np.ndarray, layout: features.FeatureLayout) -> dict[str, int]:
    """Records (with an outcome) flagged by their features: no location, unknown area, and in a
    city's own layout an undeclared category or coordinates far outside the region."""
    def flagged(name: str) -> int:
        return int(X[:, layout.column(name)].sum()) if name in layout.names else 0

    counts = {"rows_no_location": flagged("no_location"),
              "rows_unknown_area": flagged("unknown_area") if layout.area_covariates else flagged(features.AREA_PREFIX + features.UNKNOWN)}
    if layout != features.POLICE_UK:
        counts["rows_unknown_category"] = flagged(features.CATEGORY_PREFIX + features.UNKNOWN)
        counts["rows_outside_region"] = flagged("outside_region")
    return counts


# The fields of a record that name it when it has no Crime ID (police.uk leaves it empty for
# anti-social behaviour), in schema order; any the frame lacks are skipped.
_KEY_FIELDS = ("month", "reported_by", "falls_within", "longitude", "latitude", "location", "lsoa_code", "lsoa_name", "crime_type", "outcome", "context")


def record_keys(records: pd.DataFrame) -> np.ndarray:
    """A key per record from that record alone (for per-record choices such as the audit
    holdout): "id:<Crime ID>", or, without an ID, "rec:" + SHA-256 of its own fields. Two
    records with equal fields and no ID get the same key."""
    ids = _as_str(records["crime_id"]) if "crime_id" in records.columns else np.full(len(records), "")
    fields = [c for c in _KEY_FIELDS if c in records.columns]
    keys = np.array(["id:" + i for i in ids], dtype=object)
    missing = np.flatnonzero(ids == "")
    if len(missing):
        text = records.iloc[missing][fields].astype("string").fillna("").to_numpy(dtype=str)
        keys[missing] = ["rec:" + hashlib.sha256("\x1f".join(row).encode("utf-8")).hexdigest() for row in text]
    return keys.astype(str)


def _as_str(values: pd.Series) -> np.ndarray:
    return np.asarray(values.astype("string").fillna("").to_numpy(dtype=str))
