"""Hotspot metrics at fixed coverage, with block-bootstrap intervals over test months.

A *map* is a score per (area, test month); at coverage c each agency flags, every month, its
``hotspot_k(c, n_areas)`` highest-scoring areas (ties share the remaining flags, as in
``tasks.hotspot_metrics``). Cells are the agency's LSOAs and "area" is their **number**, not their
surface: the areas table has centroids, not polygons, so a flagged share of 5% means 5% of the
LSOAs. police.uk snaps coordinates to anonymous map points, so nothing here supports claims
below LSOA level. Small agencies cannot flag 1%: k is at least one area (``flagged_share`` gives
the share actually flagged).

Per month four sums are kept, and every metric is a ratio of sums over the months (and, pooled,
over agencies), so busy months weigh more and a month without incidents adds no noise:

- ``hit_rate`` = incidents in flagged areas / all incidents;
- ``pai`` = hit rate / flagged share of areas (1 = no better than flagging at random);
- ``pei_star`` (PEI*, after Hunt 2016 and White, Hunt & Green 2023) = PAI / PAI*, where PAI* is
  the PAI of the smallest set of areas that, in hindsight, held as many incidents as the map
  caught. With the same hits in both, PEI* = a* / a: the fewest areas that could have caught
  the map's hits over the areas the map flagged (1 = not one area wasted). a* is a whole number
  of areas (the hindsight map is a real map); months without incidents are left out of both
  sums, since no map can catch anything in them;
- ``rri`` (recapture rate index, Levine 2008) = (hits this month / hits of the same flagged
  areas in the month before) / (incidents this month / incidents the month before): above 1 the
  flagged areas took a growing share of crime, below 1 a shrinking one (regression to the mean
  shows here, e.g. for last month's top areas). It measures stability, not accuracy.

Intervals: a circular block bootstrap over test months (Politis & Romano 1992). Months are
drawn in blocks of consecutive months so that month-to-month dependence stays inside a
replicate; every agency and every map is resampled with the **same** months in a replicate, so
differences between maps (``difference``) are paired. With few test months (6 by default) the
intervals are rough: they show month-to-month variation, not sampling of new areas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tasks.hotspot import HotspotSplit, hotspot_k
from tasks.hotspot_metrics import top_k_weights

COVERAGES: tuple[float, ...] = (0.01, 0.05, 0.10)
COVERAGE_METRICS: tuple[str, ...] = ("hit_rate", "pai", "pei_star", "rri")
# Column order of a month's sums (``month_sums``).
FIELDS: tuple[str, ...] = ("hits", "incidents", "flagged", "areas", "min_areas", "flagged_active", "prior_hits", "prior_incidents")
_F = {name: i for i, name in enumerate(FIELDS)}


@dataclass(frozen=True)
class Estimate:
    """A point value over all test months and its bootstrap percentile interval (None where the
    ratio is undefined, e.g. no incident at all)."""

    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def coverage_label(coverage: float) -> str:
    """"1%", "5%", "10%": the key a coverage has in results."""
    return f"{100 * coverage:g}%"


def min_areas_for(actual: np.ndarray, hits: float) -> int:
    """The fewest areas whose recorded incidents add up to at least ``hits`` (0 for no hits):
    the hindsight map behind PEI*."""
    if hits <= 1e-12:
        return 0
    cumulative = np.cumsum(np.sort(np.asarray(actual, dtype=np.float64))[::-1])
    return int(np.searchsorted(cumulative, hits - 1e-9) + 1)


def month_sums(split: HotspotSplit, scores: np.ndarray, coverage: float, months: Sequence[str]) -> np.ndarray:
    """Per month of ``months`` (rows), the sums ``FIELDS`` of the map ``scores`` (aligned with the
    split's test rows) at ``coverage``; a month the split lacks is a row of zeros."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(split.test_months):
        raise ValueError(f"coverage metrics: {len(scores)} scores for {len(split.test_months)} test rows of {split.agency!r}.")
    if not np.isfinite(scores).all():
        raise ValueError(f"coverage metrics: scores of {split.agency!r} contain NaN or infinity.")
    actual = split.test_next_counts.astype(np.float64)
    prior = previous_counts(split)
    out = np.zeros((len(months), len(FIELDS)))
    for i, month in enumerate(months):
        rows = np.flatnonzero(split.test_months == month)
        if not len(rows):
            continue
        k = hotspot_k(coverage, len(rows))
        flags = top_k_weights(scores[rows], k)
        hits = float(flags @ actual[rows])
        incidents = float(actual[rows].sum())
        flagged = float(flags.sum())
        out[i] = (
            hits,
            incidents,
            flagged,
            len(rows),
            min_areas_for(actual[rows], hits),
            flagged if incidents > 0 else 0.0,  # PEI*'s denominator: months a map could score in
            float(flags @ prior[rows]),
            float(prior[rows].sum()),
        )
    return out


def previous_counts(split: HotspotSplit) -> np.ndarray:
    """Recorded incidents of each test row's area in the month before its label month (the
    ``count_lag1`` feature, stored as log1p of a whole count)."""
    if "count_lag1" not in split.feature_names:
        raise ValueError(f"coverage metrics: the split of {split.agency!r} has no count_lag1 feature.")
    lag1 = split.X_test[:, split.feature_names.index("count_lag1")].astype(np.float64)
    return np.round(np.expm1(lag1))


def metrics_of_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics ``COVERAGE_METRICS`` of summed months; ``sums`` is (..., len(FIELDS)) and each
    result has the leading shape, NaN where a ratio is undefined."""
    s = {name: sums[..., i] for name, i in _F.items()}
    hit_rate = _divide(s["hits"], s["incidents"])
    pai = _divide(hit_rate, _divide(s["flagged"], s["areas"]))
    rri = _divide(_divide(s["hits"], s["prior_hits"]), _divide(s["incidents"], s["prior_incidents"]))
    return {"hit_rate": hit_rate, "pai": pai, "pei_star": _divide(s["min_areas"], s["flagged_active"]), "rri": rri}


def circular_block_indices(n_months: int, block: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n_months) month indices: blocks of ``block`` consecutive months (wrapping
    round from the last month to the first) with uniformly drawn starts, cut to n_months."""
    if n_months < 1 or block < 1 or replicates < 1:
        raise ValueError(f"block bootstrap: needs months >= 1, block >= 1, replicates >= 1 (got {n_months}, {block}, {replicates}).")
    block = min(block, n_months)
    n_blocks = -(-n_months // block)
    starts = rng.integers(0, n_months, size=(replicates, n_blocks))
    index = (starts[:, :, None] + np.arange(block)[None, None, :]) % n_months
    return index.reshape(replicates, n_blocks * block)[:, :n_months]


def default_block(n_months: int) -> int:
    """Block length n^(1/3) rounded (at least 1), the usual order for a block bootstrap."""
    return max(1, int(round(n_months ** (1 / 3))))


def estimate(
    sums: np.ndarray,
    index: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    level: float = 0.95,
) -> Estimate:
    """``statistic`` of the months' ``sums`` (months, fields) summed over all months, with the
    percentile interval of the same statistic over the resampled months ``index`` (replicates,
    months). Replicates where the statistic is undefined (NaN) are left out of the interval."""
    value = float(statistic(sums.sum(axis=0)))
    draws = statistic(sums[index].sum(axis=1))
    draws = draws[np.isfinite(draws)]
    tail = (1 - level) / 2
    low, high = (float(q) for q in np.quantile(draws, [tail, 1 - tail])) if draws.size else (np.nan, np.nan)
    return Estimate(*(None if not np.isfinite(v) else v for v in (value, low, high)))


def metric_estimates(sums: np.ndarray, index: np.ndarray, level: float = 0.95) -> dict[str, Estimate]:
    """Every ``COVERAGE_METRICS`` metric of one map's month sums, with intervals."""
    def one(name: str) -> Callable[[np.ndarray], np.ndarray]:
        return lambda s: metrics_of_sums(s)[name]

    return {name: estimate(sums, index, one(name), level) for name in COVERAGE_METRICS}


def difference(sums: np.ndarray, reference: np.ndarray, index: np.ndarray, metric: str = "pai", level: float = 0.95) -> Estimate:
    """``metric`` of one map minus that of ``reference`` (both (months, fields), same months),
    paired: each replicate resamples the same months for both."""
    width = len(FIELDS)

    def stat(s: np.ndarray) -> np.ndarray:
        out: np.ndarray = metrics_of_sums(s[..., :width])[metric] - metrics_of_sums(s[..., width:])[metric]
        return out

    return estimate(np.concatenate([sums, reference], axis=1), index, stat, level)


def _divide(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)
    return out
