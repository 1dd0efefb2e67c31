"""Statistics across agencies: query definitions, their public cell domains, and an agency's
exact counts per cell (what it would add noise to before anything leaves it).

Group keys come only from public domains — the run's months, the data.police.uk crime-type and
outcome lists, the federation's agency names, the public areas table — never from values found
in the data: a cell list read from the records would itself reveal records. A record whose value
lies outside the domain (an LSOA missing from the areas table, a month outside the run) falls in
no cell of that query. Either way one record falls in at most one cell of a histogram.

Query kinds:
- count: a histogram over the product of the `by` domains (records matching `where`);
- rate: two histograms over `by` (numerator: records matching `where` and `numerator`;
  denominator: records matching `where`), released separately, divided afterwards;
- top_k: an area (or grid) histogram; the k cells with the largest released counts (post-processing);
- sum: per cell Σ clamp(x) of a bounded numeric column (`Bounded`), in fixed point;
- mean: two histograms, the midpoint-centred fixed-point sum and the count of records with a
  value, released separately, combined afterwards (centre + sum ÷ count).

Numeric columns (`NUMERIC_COLUMNS`): latitude and longitude (every source; the "mean centre" of
crime a crime analyst computes), hour of day (0–23, from a city's csv `date` column with a time;
none in data.police.uk or synthetic files). A record without a value (no coordinates, no time)
is *missing*: it counts in no cell of a sum or mean (neither its sum nor its count) and is
counted for the harness (`value_report`). A value outside the public bounds is clamped into them
(counted too): the clamp is what bounds one record's influence.

Fixed point: the secure sum adds integers mod M, so a value becomes q(x) = round((clamp(x) − c)
· QUANTA / h), an integer in [−QUANTA, QUANTA], with c the centre (0 for a sum; the midpoint of
the bounds for a mean) and h = max(|lo − c|, |hi − c|): one quantum is h / QUANTA, the
rounding error at most half a quantum per record (≤ n·h/(2·QUANTA) over n records, in practice
≈ √n·h/(QUANTA·√12) because the errors do not line up); `quantisation_error` measures it.

`grid` cells are squares of a regular grid laid over a public box (the extent of the public
areas table), named `g<row>-<col>`; a record falls in the square of its coordinates (none if it
has none or lies outside the box).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from policedata.schema import CRIME_TYPES, OUTCOME_CATEGORIES

__all__ = ["DIMENSIONS", "KINDS", "NUMERIC_COLUMNS", "QUANTA", "Bounded", "ValueReport", "cell_totals", "numeric_values", "value_report", "MAP_DIMENSIONS", "NO_OUTCOME", "Domain", "Grid", "Histogram", "Query", "cell_frame"]

KINDS = ("count", "rate", "top_k", "sum", "mean")
VALUE_KINDS = ("sum", "mean")  # kinds over a bounded numeric column
NUMERIC_COLUMNS = ("latitude", "longitude", "hour")
# Fixed-point steps per half-range (one record moves a fixed-point sum by at most QUANTA). More
# steps mean less rounding but a larger integer σ, and the discrete Gaussian's exact privacy loss
# is enumerated over ±11σ integers on every ledger read (σ·QUANTA ≈ 1,000: ~0.1 s).
QUANTA = 100
# Query dimension → record column it groups by.
DIMENSIONS: dict[str, str] = {"month": "month", "crime_type": "crime_type", "outcome": "outcome", "agency": "agency", "area": "lsoa_code", "grid": "longitude"}
MAP_DIMENSIONS = ("area", "grid")  # what a top_k query ranks
KM_PER_DEGREE_LAT = 111.32


@dataclass(frozen=True)
class Grid:
    """Squares of `km` km over a public box (lon/lat of its south-west corner, rows × cols)."""

    west: float
    south: float
    km: float
    rows: int
    cols: int

    @classmethod
    def over(cls, lon_min: float, lon_max: float, lat_min: float, lat_max: float, km: float) -> Grid:
        """The grid of `km` squares covering the box (a square's width in degrees of longitude
        taken at the box's middle latitude)."""
        grid = cls(lon_min, lat_min, km, 1, 1)
        rows = int(np.floor((lat_max - lat_min) / grid.step_lat)) + 1
        cols = int(np.floor((lon_max - lon_min) / grid.step_lon(lat_min, lat_max))) + 1
        return cls(lon_min, lat_min, km, rows, cols)

    @property
    def step_lat(self) -> float:
        return self.km / KM_PER_DEGREE_LAT

    def step_lon(self, lat_min: float | None = None, lat_max: float | None = None) -> float:
        middle = self.south + self.rows * self.step_lat / 2 if lat_min is None or lat_max is None else (lat_min + lat_max) / 2
        return self.km / (KM_PER_DEGREE_LAT * max(float(np.cos(np.radians(middle))), 1e-6))

    def names(self) -> tuple[str, ...]:
        return tuple(f"g{r:04d}-{c:04d}" for r in range(self.rows) for c in range(self.cols))

    def position(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Cell index per point (row-major, as `names`), −1 outside the box or without coordinates."""
        step_lon = self.step_lon()
        with np.errstate(invalid="ignore"):
            row = np.floor((lat - self.south) / self.step_lat)
            col = np.floor((lon - self.west) / step_lon)
        inside = np.isfinite(row) & np.isfinite(col) & (row >= 0) & (row < self.rows) & (col >= 0) & (col < self.cols)
        return np.where(inside, np.nan_to_num(row).astype(np.int64) * self.cols + np.nan_to_num(col).astype(np.int64), -1)
NO_OUTCOME = ""  # anti-social behaviour carries no outcome: a declared value of the outcome domain


@dataclass(frozen=True)
class Domain:
    """The public values of every dimension, in a fixed order (cells are their product)."""

    months: tuple[str, ...]
    agencies: tuple[str, ...]
    areas: tuple[str, ...] = ()
    grid: Grid | None = None
    crime_types: tuple[str, ...] = CRIME_TYPES
    outcomes: tuple[str, ...] = (*OUTCOME_CATEGORIES, NO_OUTCOME)

    def values(self, dimension: str) -> tuple[str, ...]:
        by_name = {"month": self.months, "crime_type": self.crime_types, "outcome": self.outcomes, "agency": self.agencies, "area": self.areas, "grid": self.grid.names() if self.grid else ()}
        if dimension not in by_name:
            raise ValueError(f"unknown dimension {dimension!r}: use one of {', '.join(DIMENSIONS)}")
        values = by_name[dimension]
        if not values:
            raise ValueError(f"dimension {dimension!r} has no public values here (area and grid need the public areas table)")
        return values


@dataclass(frozen=True)
class Bounded:
    """A numeric column clamped into public bounds [lo, hi] and written in fixed point around
    `centre` (see the module docstring): one record moves a cell by at most QUANTA steps."""

    column: str
    lo: float
    hi: float
    centre: float = 0.0

    def __post_init__(self) -> None:
        if self.column not in NUMERIC_COLUMNS:
            raise ValueError(f"unknown numeric column {self.column!r}: use one of {', '.join(NUMERIC_COLUMNS)}")
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.lo < self.hi):
            raise ValueError(f"bounds [{self.lo}, {self.hi}]: need finite lo < hi")

    @property
    def half_range(self) -> float:
        """h = max(|lo − c|, |hi − c|): the largest |clamped value − centre|."""
        return max(abs(self.lo - self.centre), abs(self.hi - self.centre))

    @property
    def quantum(self) -> float:
        """One fixed-point step, in the column's units."""
        return self.half_range / QUANTA

    def fixed_point(self, values: np.ndarray) -> np.ndarray:
        """round((clamp(x) − c) / quantum) as int64 in [−QUANTA, QUANTA] (NaN: not to be used)."""
        clamped = np.clip(np.nan_to_num(np.asarray(values, dtype=float), nan=self.centre), self.lo, self.hi)
        steps: np.ndarray = np.clip(np.rint((clamped - self.centre) / self.quantum), -QUANTA, QUANTA).astype(np.int64)
        return steps


@dataclass(frozen=True)
class Query:
    """One analytics question. `where` and `numerator` map a dimension to the values kept."""

    name: str
    kind: str
    by: tuple[str, ...]
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    numerator: tuple[tuple[str, tuple[str, ...]], ...] = ()
    k: int = 10
    epsilon: float | None = None  # this query's ε per agency (None: an equal share of the block's)
    column: str | None = None  # sum / mean: the numeric column
    bounds: tuple[float, float] | None = None  # sum / mean: public [lo, hi] values are clamped into

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"query {self.name!r}: unknown kind {self.kind!r}: use one of {', '.join(KINDS)}")
        for dim in (*self.by, *(d for d, _ in self.where), *(d for d, _ in self.numerator)):
            if dim not in DIMENSIONS:
                raise ValueError(f"query {self.name!r}: unknown dimension {dim!r}: use one of {', '.join(DIMENSIONS)}")
        if self.kind == "top_k" and self.by not in (("area",), ("grid",)):
            raise ValueError(f"query {self.name!r}: top_k ranks areas: by must be [area] or [grid]")
        if self.kind == "rate" and not self.numerator:
            raise ValueError(f"query {self.name!r}: a rate needs a numerator filter")
        if self.kind != "rate" and self.numerator:
            raise ValueError(f"query {self.name!r}: numerator is for rate queries only")
        if (self.kind in VALUE_KINDS) != (self.column is not None and self.bounds is not None):
            raise ValueError(f"query {self.name!r}: a sum or mean needs column and bounds, other kinds neither")
        if self.bounds is not None:
            Bounded(str(self.column), *self.bounds)  # checks the column and lo < hi

    def histograms(self) -> tuple[Histogram, ...]:
        """The histograms this query releases (a rate: numerator then denominator)."""
        if self.kind == "rate":
            return (Histogram(f"{self.name}.numerator", self.by, (*self.where, *self.numerator)), Histogram(f"{self.name}.denominator", self.by, self.where))
        if self.kind in VALUE_KINDS:
            assert self.column is not None and self.bounds is not None
            lo, hi = self.bounds
            if self.kind == "sum":  # Σ clamp(x) itself: sensitivity max(|lo|, |hi|), one release
                return (Histogram(self.name, self.by, self.where, Bounded(self.column, lo, hi)),)
            # A mean has its count anyway, so its sum is centred: sensitivity (hi − lo)/2.
            centred = Bounded(self.column, lo, hi, (lo + hi) / 2)
            return (Histogram(f"{self.name}.sum", self.by, self.where, centred), Histogram(f"{self.name}.count", self.by, self.where, present=self.column))
        return (Histogram(self.name, self.by, self.where),)


@dataclass(frozen=True)
class Histogram:
    """Per cell of the product of the `by` domains, over the records matching `where` (and, with
    `present`, having a value in that numeric column): their count, or with `value` the sum of
    their fixed-point values."""

    name: str
    by: tuple[str, ...]
    where: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    value: Bounded | None = None
    present: str | None = None

    @property
    def sensitivity(self) -> int:
        """How far one record moves one cell (integer units): 1 record, or QUANTA steps."""
        return QUANTA if self.value is not None else 1

    @property
    def scale(self) -> float:
        """Column units per integer unit of the released values (1 for counts)."""
        return self.value.quantum if self.value is not None else 1.0

    @property
    def needs(self) -> str | None:
        """The numeric column a record needs a value in to count here (None: none)."""
        return self.value.column if self.value is not None else self.present

    def size(self, domain: Domain) -> int:
        return int(np.prod([len(domain.values(d)) for d in self.by])) if self.by else 1


def cell_frame(histogram: Histogram, domain: Domain) -> pd.DataFrame:
    """The cells in release order: one column per dimension (the product of the domains)."""
    if not histogram.by:
        return pd.DataFrame(index=range(1))
    rows = list(itertools.product(*(domain.values(d) for d in histogram.by)))
    return pd.DataFrame(rows, columns=list(histogram.by))


def numeric_values(records: pd.DataFrame, column: str) -> np.ndarray:
    """The numeric column's value per record (float, NaN where missing); hour from `date`
    ("YYYY-MM-DDTHH:MM"), missing without a time or a date column."""
    if column in ("latitude", "longitude"):
        return np.asarray(records[column], dtype=float) if column in records.columns else np.full(len(records), np.nan)
    if column == "hour":
        if "date" not in records.columns:
            return np.full(len(records), np.nan)
        text = records["date"].astype("string").fillna("")
        hour = pd.to_numeric(text.str.slice(11, 13), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        timed = (text.str.slice(10, 11) == "T").to_numpy(dtype=bool)
        return np.where(timed & (hour >= 0) & (hour <= 23), hour, np.nan)
    raise ValueError(f"unknown numeric column {column!r}: use one of {', '.join(NUMERIC_COLUMNS)}")


def cell_index(records: pd.DataFrame, histogram: Histogram, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """(cell per record in `cell_frame` order, whether it counts): records outside the domain,
    the `where` filter, or without a value in the numeric column the histogram needs count nowhere."""
    keep = np.ones(len(records), dtype=bool)
    for dim, values in histogram.where:
        if dim == "grid":
            raise ValueError(f"histogram {histogram.name!r}: grid cells cannot filter (group by grid instead)")
        keep &= records[DIMENSIONS[dim]].isin(values).to_numpy()
    if histogram.needs is not None:
        keep &= np.isfinite(numeric_values(records, histogram.needs))
    index = np.zeros(len(records), dtype=np.int64)
    for dim in histogram.by:
        values = domain.values(dim)
        if dim == "grid" and domain.grid is not None:
            position = domain.grid.position(records["longitude"].to_numpy(dtype=float), records["latitude"].to_numpy(dtype=float))
        else:
            position = pd.Index(values).get_indexer(records[DIMENSIONS[dim]].astype(str))
        keep &= position >= 0
        index = index * len(values) + position
    return index, keep


def record_contributions(records: pd.DataFrame, histogram: Histogram) -> np.ndarray:
    """What each record adds to its cell (int64): 1, or its fixed-point value."""
    if histogram.value is None:
        return np.ones(len(records), dtype=np.int64)
    return histogram.value.fixed_point(numeric_values(records, histogram.value.column))


def cell_totals(records: pd.DataFrame, histogram: Histogram, domain: Domain, keep: np.ndarray | None = None) -> np.ndarray:
    """Exact total per cell (int64, in `cell_frame` order): the count of the records, or the sum
    of their fixed-point values; `keep` (optional) leaves further records out (a person cap)."""
    index, counted = cell_index(records, histogram, domain)
    if keep is not None:
        counted &= keep
    if histogram.value is None:
        return np.bincount(index[counted], minlength=histogram.size(domain)).astype(np.int64)
    # Integer weights summed in float64: exact while |total| < 2^53 (max_cell_count·QUANTA is far below).
    weights = record_contributions(records, histogram)[counted].astype(np.float64)
    return np.bincount(index[counted], weights=weights, minlength=histogram.size(domain)).round().astype(np.int64)


def true_sums(records: pd.DataFrame, histogram: Histogram, domain: Domain) -> np.ndarray:
    """The exact Σ x per cell of the raw values (not clamped, not rounded): the truth a sum is
    scored against (float; the harness's yardstick)."""
    assert histogram.value is not None
    index, counted = cell_index(records, histogram, domain)
    values = numeric_values(records, histogram.value.column)[counted]
    return np.bincount(index[counted], weights=values, minlength=histogram.size(domain))


@dataclass(frozen=True)
class ValueReport:
    """The harness's figures of one value histogram over some records: how many values were
    clamped into the bounds, how many records had none, and the rounding the fixed point did."""

    clamped: int  # records in the histogram whose value lay outside [lo, hi]
    missing: int  # records matching the filter and in the domain but without a value
    quantisation_error: float  # max over cells |Σ fixed-point·quantum − Σ clamp(x − c)|, column units


def value_report(records: pd.DataFrame, histogram: Histogram, domain: Domain) -> ValueReport:
    value = histogram.value
    assert value is not None
    bare = Histogram(histogram.name, histogram.by, histogram.where)
    index, in_filter = cell_index(records, bare, domain)
    x = numeric_values(records, value.column)
    has = np.isfinite(x)
    counted = in_filter & has
    clamped = int(((x[counted] < value.lo) | (x[counted] > value.hi)).sum())
    exact = np.bincount(index[counted], weights=np.clip(x[counted], value.lo, value.hi) - value.centre, minlength=histogram.size(domain))
    fixed = np.bincount(index[counted], weights=value.fixed_point(x[counted]).astype(np.float64), minlength=histogram.size(domain)) * value.quantum
    return ValueReport(clamped, int((in_filter & ~has).sum()), float(np.abs(fixed - exact).max()) if exact.size else 0.0)
