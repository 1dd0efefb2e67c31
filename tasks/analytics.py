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
- top_k: an area (or grid) histogram; the k cells with the largest released counts (post-processing).

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

__all__ = ["DIMENSIONS", "KINDS", "MAP_DIMENSIONS", "NO_OUTCOME", "Domain", "Grid", "Histogram", "Query", "cell_counts", "cell_frame"]

KINDS = ("count", "rate", "top_k")
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
class Query:
    """One analytics question. `where` and `numerator` map a dimension to the values kept."""

    name: str
    kind: str
    by: tuple[str, ...]
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    numerator: tuple[tuple[str, tuple[str, ...]], ...] = ()
    k: int = 10
    epsilon: float | None = None  # this query's ε per agency (None: an equal share of the block's)

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

    def histograms(self) -> tuple[Histogram, ...]:
        """The histograms this query releases (a rate: numerator then denominator)."""
        if self.kind == "rate":
            return (Histogram(f"{self.name}.numerator", self.by, (*self.where, *self.numerator)), Histogram(f"{self.name}.denominator", self.by, self.where))
        return (Histogram(self.name, self.by, self.where),)


@dataclass(frozen=True)
class Histogram:
    """Counts of records matching `where`, one per cell of the product of the `by` domains."""

    name: str
    by: tuple[str, ...]
    where: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def size(self, domain: Domain) -> int:
        return int(np.prod([len(domain.values(d)) for d in self.by])) if self.by else 1


def cell_frame(histogram: Histogram, domain: Domain) -> pd.DataFrame:
    """The cells in release order: one column per dimension (the product of the domains)."""
    if not histogram.by:
        return pd.DataFrame(index=range(1))
    rows = list(itertools.product(*(domain.values(d) for d in histogram.by)))
    return pd.DataFrame(rows, columns=list(histogram.by))


def cell_counts(records: pd.DataFrame, histogram: Histogram, domain: Domain) -> np.ndarray:
    """Exact count of `records` per cell (int64, in `cell_frame` order); records outside the
    domain or the `where` filter count nowhere."""
    keep = np.ones(len(records), dtype=bool)
    for dim, values in histogram.where:
        if dim == "grid":
            raise ValueError(f"histogram {histogram.name!r}: grid cells cannot filter (group by grid instead)")
        keep &= records[DIMENSIONS[dim]].isin(values).to_numpy()
    index = np.zeros(len(records), dtype=np.int64)
    for dim in histogram.by:
        values = domain.values(dim)
        if dim == "grid" and domain.grid is not None:
            position = domain.grid.position(records["longitude"].to_numpy(dtype=float), records["latitude"].to_numpy(dtype=float))
        else:
            position = pd.Index(values).get_indexer(records[DIMENSIONS[dim]].astype(str))
        keep &= position >= 0
        index = index * len(values) + position
    return np.bincount(index[keep], minlength=histogram.size(domain)).astype(np.int64)
