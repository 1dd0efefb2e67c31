"""The `analytics:` block of a config (`peel analyze`): which statistics to release across the
agencies, how (`mode`), and at what ε per agency. Validated with the rest of the config."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policedata.schema import CRIME_TYPES, MONTH_PATTERN, OUTCOME_CATEGORIES
from tasks.analytics import NO_OUTCOME, NUMERIC_COLUMNS

Dimension = Literal["month", "crime_type", "outcome", "agency", "area", "grid"]
NumericColumn = Literal["latitude", "longitude", "hour"]  # tasks.analytics.NUMERIC_COLUMNS
MODES = ("central", "local", "federated", "federated-trusted")
MAX_ANALYTICS_EPSILON = 1000.0


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_filter(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """Filter values must be public domain values (crime types, outcomes, months)."""
    for dim, values in value.items():
        if not values:
            raise ValueError(f"{dim}: lists no value")
        if dim == "crime_type":
            unknown = [v for v in values if v not in CRIME_TYPES]
        elif dim == "outcome":
            unknown = [v for v in values if v not in (*OUTCOME_CATEGORIES, NO_OUTCOME)]
        elif dim == "month":
            unknown = [v for v in values if not re.fullmatch(MONTH_PATTERN, str(v))]
        else:
            unknown = []
        if unknown:
            raise ValueError(f"{dim}: unknown value(s) {unknown}")
    return value


class QueryConfig(_Section):
    """One query: `count` a histogram over `by`; `rate` numerator ÷ denominator histograms;
    `top_k` the k areas with the most released records (a hotspot map); `sum` / `mean` of a
    bounded numeric `column` per cell (values clamped into the public `bounds`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # also its CSV's file name
    kind: Literal["count", "rate", "top_k", "sum", "mean"] = "count"
    by: list[Dimension] = Field(default_factory=list, max_length=3)
    where: dict[Dimension, list[str]] = Field(default_factory=dict)
    numerator: dict[Dimension, list[str]] = Field(default_factory=dict)
    k: int = Field(10, ge=1, le=100_000)
    epsilon: float | None = Field(None, gt=0, le=MAX_ANALYTICS_EPSILON, allow_inf_nan=False)
    # sum / mean: the numeric column, and public bounds [lo, hi] (not read from the data: bounds
    # found in the records would reveal them) that each value is clamped into.
    column: NumericColumn | None = None
    bounds: tuple[float, float] | None = None

    _filters = field_validator("where", "numerator")(_check_filter)

    @model_validator(mode="after")
    def _shape(self) -> QueryConfig:
        if len(set(self.by)) != len(self.by):
            raise ValueError("by: lists a dimension twice")
        if self.kind == "top_k" and self.by not in ([], ["area"], ["grid"]):
            raise ValueError("by: top_k ranks areas (by: [area], the default, or [grid])")
        if "grid" in self.where or "grid" in self.numerator:
            raise ValueError("where: grid cells cannot filter (group by: [grid] instead)")
        if self.kind == "rate" and not self.numerator:
            raise ValueError("numerator: a rate needs a numerator filter (e.g. outcome: [...])")
        if self.kind != "rate" and self.numerator:
            raise ValueError("numerator: only for kind rate")
        if self.kind in ("sum", "mean"):
            if self.column is None:
                raise ValueError(f"column: a {self.kind} needs a numeric column ({', '.join(NUMERIC_COLUMNS)})")
            if self.bounds is None:
                raise ValueError(f"bounds: a {self.kind} needs public bounds [lo, hi] its values are clamped into")
            lo, hi = self.bounds
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"bounds: [{lo:g}, {hi:g}]: need finite lo < hi")
        elif self.column is not None or self.bounds is not None:
            raise ValueError(f"column, bounds: only for kind sum or mean, not {self.kind}")
        return self


class AnalyticsConfig(_Section):
    # central: the pooled exact counts (what a central platform computes; no DP); local: each
    # agency publishes its own DP counts; federated: noise shares summed under secure
    # aggregation; federated-trusted: exact counts to a coordinator trusted to add the noise.
    mode: Literal["central", "local", "federated", "federated-trusted"] = "federated"
    # The integer noise of every mode (privacy/count_release.py): discrete-gaussian N_Z(0, σ²), or
    # skellam Sk(σ²/2), whose federated shares sum to exactly a Skellam (no share floor).
    noise: Literal["discrete-gaussian", "skellam"] = "discrete-gaussian"
    # Each agency's ε for this block, split equally over the histograms of the queries that do
    # not set their own (a rate is two histograms), at the agency's δ (privacy.delta).
    epsilon: float = Field(1.0, gt=0, le=MAX_ANALYTICS_EPSILON, allow_inf_nan=False)
    # federated: agencies that may drop out or collude with the coordinator while the sum keeps σ.
    tolerate: int = Field(1, ge=0, le=499)
    # federated: agencies that (simulated) drop out before masking; more than `tolerate` refuses.
    dropouts: int = Field(0, ge=0, le=499)
    # Public bound on one agency's count in one cell (larger counts are clamped): sizes the
    # secure sum's modulus so nothing wraps.
    max_cell_count: int = Field(1_000_000_000, ge=1, le=2**40)
    # Side of the squares of `grid` cells, km (laid over the extent of the public areas table).
    grid_km: float = Field(2.0, ge=0.05, le=100, allow_inf_nan=False)
    # privacy.unit person (privacy/person_histogram.py): of the privacy.person.max_records records a
    # person keeps, at most this many cells of one histogram (None: no cap beyond max_records) and
    # at most this many records in one cell; the L2 sensitivity follows from the three caps.
    person_max_cells: int | None = Field(None, ge=1, le=10_000)
    person_max_per_cell: int | None = Field(None, ge=1, le=10_000)
    # Relative error is reported on cells whose exact count (a rate: its denominator) is at least this.
    threshold: int = Field(100, ge=1)
    queries: list[QueryConfig] = Field(min_length=1, max_length=50)

    @field_validator("queries")
    @classmethod
    def _unique_names(cls, value: list[QueryConfig]) -> list[QueryConfig]:
        names = [q.name for q in value]
        if len(set(names)) != len(names):
            raise ValueError("two queries share a name")
        return value
