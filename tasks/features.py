"""Feature vectors from records, with no statistic computed from the records themselves.

DP-SGD's guarantee assumes one record changes one training example. A per-agency normalisation or
an area outcome rate would let one record move many examples, so every constant here is fixed,
declared in the public config (a `FeatureLayout`) or taken from the public areas table. Each row is encoded from its own fields only: encoding
a row alone gives the same vector as encoding it inside any larger frame.

The layout is identical for every agency of a run, with or without an areas table, so models
trained by different agencies can be averaged. ``FeatureLayout()`` is the data.police.uk layout
(``FEATURE_NAMES``); a city's own export (`data.source: csv`) gets a layout built from its
config alone (`FeatureLayout` fields): its declared categories and area codes, day of week and
hour of day, and coordinates scaled to a declared region or the public table's extent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from policedata.csv_region import Box, box_of_areas
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

# A category's one-hot feature is CATEGORY_PREFIX + its name; anything not declared is "unknown".
CATEGORY_PREFIX = "crime_type:"
AREA_PREFIX = "area:"  # area identity (a declared list of area codes)
UNKNOWN = "unknown"
# Day of week and hour of day (cyclic), from the record's own date and time (records' `date`
# column, "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM"); `no_time`: the date carries no time of day.
TIME_FEATURES = ("weekday_sin", "weekday_cos", "hour_sin", "hour_cos", "no_time")


@dataclass(frozen=True)
class FeatureLayout:
    """What a record's feature vector holds, fixed by public config before any record is read
    (the same for every agency). The defaults are the data.police.uk layout."""

    categories: tuple[str, ...] = OUTCOME_CRIME_TYPES  # one-hot, plus CATEGORY_PREFIX + "unknown"
    area_codes: tuple[str, ...] = ()  # area identity one-hot (plus "area:unknown") when given
    area_covariates: bool = True  # the public areas table's covariates and `unknown_area`
    time_of_day: bool = False  # TIME_FEATURES
    # "england-wales": the areas table's mean and std, else fixed England-and-Wales constants.
    # "box": scaled to `region`, else to the areas table's centroid extent, else left out; a
    # record far outside is flagged (`outside_region`).
    coordinates: Literal["england-wales", "box"] = "england-wales"
    region: Box | None = None  # the declared region (data.features.region)

    def __post_init__(self) -> None:
        _ = self.names  # a repeated name is refused when the layout is made

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        names = [*(CATEGORY_PREFIX + c for c in self.categories), CATEGORY_PREFIX + UNKNOWN, "month_sin", "month_cos"]
        if self.time_of_day:
            names += TIME_FEATURES
        names += ["latitude", "longitude", "no_location"]
        if self.coordinates == "box":
            names.append("outside_region")
        if self.area_codes:
            names += [*(AREA_PREFIX + c for c in self.area_codes), AREA_PREFIX + UNKNOWN]
        if self.area_covariates:
            names += [*(name for _, name in _AREA_COVARIATES), "unknown_area"]
        if len(set(names)) != len(names):
            raise ValueError(f"feature layout: a declared category or area code repeats or is {UNKNOWN!r}")
        return tuple(names)

    @property
    def width(self) -> int:
        return len(self.names)

    def column(self, name: str) -> int:
        """Index of the feature called ``name`` (e.g. ``column("no_location")``)."""
        return self.names.index(name)

    def as_dict(self) -> dict[str, Any]:
        """JSON values (`from_dict` reads them back)."""
        return {"categories": list(self.categories), "area_codes": list(self.area_codes), "area_covariates": self.area_covariates,
                "time_of_day": self.time_of_day, "coordinates": self.coordinates,
                "region": {"latitude": list(self.region.latitude), "longitude": list(self.region.longitude)} if self.region else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FeatureLayout:
        if not data:
            return cls()
        region = data.get("region")
        return cls(
            categories=tuple(str(c) for c in data["categories"]),
            area_codes=tuple(str(c) for c in data["area_codes"]),
            area_covariates=bool(data["area_covariates"]),
            time_of_day=bool(data["time_of_day"]),
            coordinates=data["coordinates"],
            region=Box(_pair(region["latitude"]), _pair(region["longitude"])) if region else None,
        )


def _pair(values: Any) -> tuple[float, float]:
    low, high = values
    return float(low), float(high)


POLICE_UK = FeatureLayout()
FEATURE_NAMES: tuple[str, ...] = POLICE_UK.names
N_FEATURES = len(FEATURE_NAMES)

_RECORD_COLUMNS = ("month", "crime_type", "latitude", "longitude", "lsoa_code")


@dataclass(frozen=True)
class _AreaLookup:
    """Standardised public covariates per LSOA code, plus the coordinate constants."""

    covariates: pd.DataFrame  # index: LSOA code; columns: feature names; rows all finite
    latitude: tuple[float, float]
    longitude: tuple[float, float]


def encode(records: pd.DataFrame, areas: pd.DataFrame | None = None, layout: FeatureLayout = POLICE_UK) -> np.ndarray:
    """Encode records as a float32 matrix of shape (len(records), layout.width).

    ``areas`` is the public areas table; give every agency the same table (not a per-agency
    subset), since its statistics set the scaling constants.
    """
    _require_columns(records, _RECORD_COLUMNS, "records")
    lookup = _area_lookup(areas)
    parts = [_one_hot(records["crime_type"], layout.categories), _month_of_year(records["month"])]
    if layout.time_of_day:
        parts.append(_time_of_day(records["date"] if "date" in records.columns else pd.Series("", index=records.index)))
    if layout.coordinates == "box":
        parts.append(_location_in_box(records, _box(layout, areas)))
    else:
        parts.append(_location(records, lookup))
    if layout.area_codes:
        parts.append(_one_hot(records["lsoa_code"], layout.area_codes))
    if layout.area_covariates:
        parts.append(_area_covariates(records["lsoa_code"], lookup))
    X = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
    assert X.shape[1] == layout.width
    return X


def column(name: str) -> int:
    """Index of the feature called ``name`` in the data.police.uk layout (``POLICE_UK.column``)."""
    return POLICE_UK.column(name)


def _one_hot(values: pd.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    """One column per declared value, plus a last "unknown" column for anything else."""
    codes = pd.Categorical(values.astype("string").fillna(""), categories=list(vocabulary)).codes.astype(np.int64)
    codes[codes < 0] = len(vocabulary)  # the "unknown" slot
    return np.asarray(np.eye(len(vocabulary) + 1, dtype=np.float32)[codes])


def _time_of_day(date: pd.Series) -> np.ndarray:
    """Weekday and hour (cyclic) of each record's own "YYYY-MM-DD[THH:MM]"; 0 where unknown."""
    text = date.astype("string").fillna("")
    day = pd.to_datetime(text.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    weekday = np.asarray(day.dt.dayofweek, dtype=float)  # Monday = 0
    hour = pd.to_numeric(text.str.slice(11, 13), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    minute = pd.to_numeric(text.str.slice(14, 16), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    timed = (text.str.slice(10, 11) == "T").to_numpy(dtype=bool) & np.isfinite(hour) & np.isfinite(minute) & np.isfinite(weekday)
    day_angle = 2 * np.pi * weekday / 7
    clock_angle = 2 * np.pi * (hour + minute / 60) / 24
    known_day = np.isfinite(weekday)
    return np.stack([
        np.where(known_day, np.sin(day_angle), 0.0), np.where(known_day, np.cos(day_angle), 0.0),
        np.where(timed, np.sin(clock_angle), 0.0), np.where(timed, np.cos(clock_angle), 0.0),
        (~timed).astype(float),
    ], axis=1)


def _box(layout: FeatureLayout, areas: pd.DataFrame | None) -> Box | None:
    """The declared region, else the public table's centroid extent, else None (no scaling)."""
    if layout.region is not None:
        return layout.region
    return box_of_areas(areas) if areas is not None else None


def _location_in_box(records: pd.DataFrame, box: Box | None) -> np.ndarray:
    """latitude, longitude (scaled to the box), no_location, outside_region. Without a box the
    coordinates are no feature (0 for every record); a record far outside the box keeps no
    coordinate features either, and is flagged."""
    lat = pd.to_numeric(records["latitude"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    lon = pd.to_numeric(records["longitude"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = ~(np.isfinite(lat) & np.isfinite(lon))
    if box is None:
        zeros = np.zeros(len(records))
        return np.stack([zeros, zeros, missing.astype(float), zeros], axis=1)
    outside = box.far_outside(lat, lon)
    lat_z, lon_z = box.scaled(lat, lon)
    unused = missing | outside
    return np.stack([np.where(unused, 0.0, lat_z), np.where(unused, 0.0, lon_z), missing.astype(float), outside.astype(float)], axis=1)


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
