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
- top_k: an area histogram; the k areas with the largest released counts (post-processing).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from policedata.schema import CRIME_TYPES, OUTCOME_CATEGORIES

__all__ = ["DIMENSIONS", "KINDS", "NO_OUTCOME", "Domain", "Histogram", "Query", "cell_counts", "cell_frame"]

KINDS = ("count", "rate", "top_k")
# Query dimension → record column it groups by.
DIMENSIONS: dict[str, str] = {"month": "month", "crime_type": "crime_type", "outcome": "outcome", "agency": "agency", "area": "lsoa_code"}
NO_OUTCOME = ""  # anti-social behaviour carries no outcome: a declared value of the outcome domain


@dataclass(frozen=True)
class Domain:
    """The public values of every dimension, in a fixed order (cells are their product)."""

    months: tuple[str, ...]
    agencies: tuple[str, ...]
    areas: tuple[str, ...] = ()
    crime_types: tuple[str, ...] = CRIME_TYPES
    outcomes: tuple[str, ...] = (*OUTCOME_CATEGORIES, NO_OUTCOME)

    def values(self, dimension: str) -> tuple[str, ...]:
        by_name = {"month": self.months, "crime_type": self.crime_types, "outcome": self.outcomes, "agency": self.agencies, "area": self.areas}
        if dimension not in by_name:
            raise ValueError(f"unknown dimension {dimension!r}: use one of {', '.join(DIMENSIONS)}")
        values = by_name[dimension]
        if not values:
            raise ValueError(f"dimension {dimension!r} has no public values here (area needs the public areas table)")
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
        if self.kind == "top_k" and self.by != ("area",):
            raise ValueError(f"query {self.name!r}: top_k ranks areas: by must be [area]")
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
        keep &= records[DIMENSIONS[dim]].isin(values).to_numpy()
    index = np.zeros(len(records), dtype=np.int64)
    for dim in histogram.by:
        values = domain.values(dim)
        position = pd.Index(values).get_indexer(records[DIMENSIONS[dim]].astype(str))
        keep &= position >= 0
        index = index * len(values) + position
    return np.bincount(index[keep], minlength=histogram.size(domain)).astype(np.int64)
