"""Feature vectors from records, with no statistic computed from the records themselves.

DP-SGD's guarantee assumes one record changes one training example. A per-agency normalisation or
an area outcome rate would let one record move many examples, so every constant here is either
fixed or taken from the public areas table. Each row is encoded from its own fields only: encoding
a row alone gives the same vector as encoding it inside any larger frame.

The layout (``FEATURE_NAMES``) is identical for every agency, with or without an areas table, so
models trained by different agencies can be averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from policedata.schema import CRIME_TYPES, NO_OUTCOME_TYPES

# Crime types that carry an outcome (13); anything else goes to the "unknown" slot.
OUTCOME_CRIME_TYPES: tuple[str, ...] = tuple(t for t in CRIME_TYPES if t not in NO_OUTCOME_TYPES)

# Fixed standardisation for coordinates when no areas table is given (roughly England & Wales).
UK_LATITUDE = (52.5, 1.5)  # (mean, std)
UK_LONGITUDE = (-1.5, 1.5)

# Public covariates taken from the areas table, as (table column, feature name).
_AREA_COVARIATES: tuple[tuple[str, str], ...] = (
    ("deprivation", "area_deprivation"),
    ("night_economy", "area_night_economy"),
    ("log_population", "area_log_population"),  # log1p(population), derived below
)
_AREA_TABLE_COLUMNS = ("LSOA code", "Longitude", "Latitude", "deprivation", "night_economy", "population")

FEATURE_NAMES: tuple[str, ...] = (
    *(f"crime_type:{t}" for t in OUTCOME_CRIME_TYPES),
    "crime_type:unknown",
    "month_sin",
    "month_cos",
    "latitude",
    "longitude",
    "no_location",
    *(name for _, name in _AREA_COVARIATES),
    "unknown_area",
)
N_FEATURES = len(FEATURE_NAMES)

_RECORD_COLUMNS = ("month", "crime_type", "latitude", "longitude", "lsoa_code")


@dataclass(frozen=True)
class _AreaLookup:
    """Standardised public covariates per LSOA code, plus the coordinate constants."""

    covariates: pd.DataFrame  # index: LSOA code; columns: feature names; rows all finite
    latitude: tuple[float, float]
    longitude: tuple[float, float]


def encode(records: pd.DataFrame, areas: pd.DataFrame | None = None) -> np.ndarray:
    """Encode records as a float32 matrix of shape (len(records), N_FEATURES).

    ``areas`` is the public areas table; give every agency the same table (not a per-agency
    subset), since its statistics set the scaling constants.
    """
    _require_columns(records, _RECORD_COLUMNS, "records")
    lookup = _area_lookup(areas)
    parts = (
        _crime_type_one_hot(records["crime_type"]),
        _month_of_year(records["month"]),
        _location(records, lookup),
        _area_covariates(records["lsoa_code"], lookup),
    )
    X = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
    assert X.shape[1] == N_FEATURES
    return X


def column(name: str) -> int:
    """Index of the feature called ``name`` (e.g. ``column("no_location")``)."""
    return FEATURE_NAMES.index(name)


def _crime_type_one_hot(crime_type: pd.Series) -> np.ndarray:
    codes = pd.Categorical(crime_type, categories=OUTCOME_CRIME_TYPES).codes.astype(np.int64)
    codes[codes < 0] = len(OUTCOME_CRIME_TYPES)  # the "unknown" slot
    return np.asarray(np.eye(len(OUTCOME_CRIME_TYPES) + 1, dtype=np.float32)[codes])


def _month_of_year(month: pd.Series) -> np.ndarray:
    text = month.astype("string").fillna("")
    bad = ~text.str.fullmatch(r"\d{4}-(0[1-9]|1[0-2])").astype(bool)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"records: month {text.iloc[row]!r} at row {row} is not a 'YYYY-MM' month "
            f"({int(bad.sum())} such rows); fix the month column."
        )
    angle = 2 * np.pi * (text.str.slice(5, 7).astype(int).to_numpy() - 1) / 12
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def _location(records: pd.DataFrame, lookup: _AreaLookup) -> np.ndarray:
    lat = pd.to_numeric(records["latitude"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    lon = pd.to_numeric(records["longitude"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = ~(np.isfinite(lat) & np.isfinite(lon))
    lat_z = np.where(missing, 0.0, (lat - lookup.latitude[0]) / lookup.latitude[1])
    lon_z = np.where(missing, 0.0, (lon - lookup.longitude[0]) / lookup.longitude[1])
    return np.stack([lat_z, lon_z, missing.astype(float)], axis=1)


def _area_covariates(lsoa_code: pd.Series, lookup: _AreaLookup) -> np.ndarray:
    codes = lsoa_code.astype("string").fillna("")
    values = lookup.covariates.reindex(codes.to_numpy()).to_numpy(dtype=float, na_value=np.nan)
    unknown = np.isnan(values).any(axis=1)
    values = np.where(unknown[:, None], 0.0, values)
    return np.concatenate([values, unknown[:, None].astype(float)], axis=1)


def _area_lookup(areas: pd.DataFrame | None) -> _AreaLookup:
    names = [name for _, name in _AREA_COVARIATES]
    if areas is None:
        return _AreaLookup(pd.DataFrame(columns=names, dtype=float), UK_LATITUDE, UK_LONGITUDE)
    _require_columns(areas, _AREA_TABLE_COLUMNS, "areas table")
    # The table may list an LSOA once per agency; its covariates are the same public values.
    table = areas.drop_duplicates("LSOA code").copy()
    table["LSOA code"] = table["LSOA code"].astype("string")
    table = table[table["LSOA code"].fillna("") != ""]
    numeric = {c: pd.to_numeric(table[c], errors="coerce") for c in _AREA_TABLE_COLUMNS[1:]}
    numeric["log_population"] = np.log1p(numeric["population"].clip(lower=0))
    covariates = pd.DataFrame(
        {name: _standardise(numeric[col]) for col, name in _AREA_COVARIATES}
    ).set_axis(table["LSOA code"].to_numpy())
    covariates = covariates[np.isfinite(covariates.to_numpy(dtype=float, na_value=np.nan)).all(axis=1)]
    lat_stats, lon_stats = _mean_std(numeric["Latitude"]), _mean_std(numeric["Longitude"])
    if lat_stats is None or lon_stats is None:  # too few centroids to scale by
        lat_stats, lon_stats = UK_LATITUDE, UK_LONGITUDE
    return _AreaLookup(covariates, lat_stats, lon_stats)


def _standardise(values: pd.Series) -> pd.Series:
    v = _finite(values)
    mean = float(v.mean()) if v.size else 0.0
    std = float(v.std()) if v.size > 1 and v.std() > 0 else 1.0  # a constant column becomes 0
    return (values - mean) / std


def _mean_std(values: pd.Series) -> tuple[float, float] | None:
    """Mean and std over the finite values, or None when they cannot scale anything."""
    v = _finite(values)
    if v.size < 2 or not v.std() > 0:
        return None
    return float(v.mean()), float(v.std())


def _finite(values: pd.Series) -> np.ndarray:
    v = values.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(v[np.isfinite(v)])


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}.")
