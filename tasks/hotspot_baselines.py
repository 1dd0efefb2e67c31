"""The hotspot baselines crime analysts compare forecasts with, per agency and pooled, scored at
fixed coverage (``tasks.coverage``) next to the models.

Every baseline scores each (area, label month t) from what was recorded up to month t - 1:

- ``naive-1m``, ``naive-3m``, ``naive-12m``: the area's incidents in the last 1, 3 or 12 months
  (months before the period count as none);
- ``kde``: a fixed-bandwidth Gaussian kernel density over the area centroids, each area weighted
  by its incidents of the last ``kde_months`` months (retrospective hotspot mapping);
- ``promap``: a prospective near-repeat map in the style of ProMap (Bowers, Johnson & Pease 2004):
  an incident of area b in month t - 1 - tau adds 1 / (1 + d / cell) * 1 / (1 + tau) to every area
  within ``promap_radius_m`` of b (d: centroid distance, cell = ``PROMAP_CELL_M``), for tau < 2.
  At LSOA resolution most centroids are further apart than 400 m, so in practice this is the
  area's own recency-weighted count plus its closest neighbours;
- ``oracle``: the true expected incidents (synthetic data only), the best map in expectation.

- ``sepp``: a self-exciting point process (SEPP/ETAS, ``tasks.sepp``) fitted by EM to the
  agency's counts of the training months only (its parameters never see a test month), then
  forecasting each month from the months before it;

**DP.** Every baseline except the oracle is a statistic of an agency's own incident records
(its counts per area and month). Released *by an agency*, such a map would need differential
privacy of its own (DP counts, see the analytics issue), charged to the agency's ledger. Here
they are computed by the evaluation harness, which sees every agency's records, as a yardstick
for the models: nothing is released and no ε is spent, so they carry no DP cost and are not
what a DP agency could publish.

``evaluate_baselines`` returns a typed result (``HotspotBaselines``; ``as_dict`` for
summary.json's ``hotspot_baselines``) and a one-sentence comparison with naive counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.coverage import (
    COVERAGE_METRICS,
    COVERAGES,
    FIELDS,
    Estimate,
    circular_block_indices,
    coverage_label,
    default_block,
    difference,
    metric_estimates,
    metrics_of_sums,
    month_sums,
)
from tasks.hotspot import HotspotSplit
from tasks.hotspot_metrics import intensity_for_test
from tasks.seeding import stable_seed
from tasks.sepp import SEPP_MAX_LAG, SEPP_NEIGHBOURS, SeppFit, fit_sepp, forecast

NAIVE_MONTHS: tuple[int, ...] = (1, 3, 12)
KDE_BANDWIDTH_M = 500.0
KDE_MONTHS = 12
PROMAP_RADIUS_M = 400.0
PROMAP_MONTHS = 2
PROMAP_CELL_M = 50.0  # ProMap's grid cell: distance counts in cells
HEADLINE_COVERAGE = 0.05
TRIVIAL_GAP = 0.01  # best naive map within 1% of the oracle's PAI: nothing left to learn
# naive-3m-dp: naive-3m from area-month counts with Laplace noise of scale 1/ε, to show what
# privacy costs a baseline. Seeded noise: a measurement of utility, not a release (a release
# draws its noise from the OS CSPRNG, privacy/mechanisms.py).
DP_COUNTS_EPSILON = 1.0
# Area shares of the coverage curves (PAI against share; point values, no intervals).
CURVE_COVERAGES: tuple[float, ...] = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.10, 0.15, 0.20)
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class AreaMonthCounts:
    """An agency's recorded incidents per area (rows, LSOA codes sorted) and month (columns)."""

    codes: np.ndarray  # str (areas,)
    months: list[str]
    counts: np.ndarray  # int64 (areas, months)


def counts_from_split(split: HotspotSplit) -> AreaMonthCounts:
    """The whole period's counts, read back from the split itself: ``count_lag1`` of the row
    labelled month t is the count of month t - 1 (training, audit hold-out and test rows), and
    the test rows' ``test_next_counts`` give the last month. Reading them from the split keeps
    the baselines on exactly the areas, months and placement rules of the models' examples."""
    if split.train_months is None or split.train_keys is None:
        raise ValueError(f"hotspot baselines: the split of {split.agency!r} has no training months/keys.")
    if "count_lag1" not in split.feature_names:
        raise ValueError(f"hotspot baselines: the split of {split.agency!r} has no count_lag1 feature.")
    lag1 = split.feature_names.index("count_lag1")
    test_months = sorted(set(split.test_months.tolist()))
    if not test_months:
        raise ValueError(f"hotspot baselines: the split of {split.agency!r} has no test rows.")
    codes = np.sort(split.test_areas[split.test_months == test_months[0]].astype(str))
    label_months = sorted(set(split.train_months.tolist()) | set(test_months))
    months = [_add_months(label_months[0], -1), *label_months]
    if months != [_add_months(months[0], i) for i in range(len(months))]:
        raise ValueError(f"hotspot baselines: the label months of {split.agency!r} are not consecutive.")
    # Training rows in the order the split built them (month-major, then area), minus the audit
    # hold-out, which keeps that order among itself.
    grid = [f"{code}|{month}" for month in label_months if month < test_months[0] for code in codes]
    keys = split.train_keys.astype(str).tolist()
    X = split.X_train[:, lag1]
    if split.X_holdout is not None and len(split.X_holdout):
        kept = set(keys)
        held = [key for key in grid if key not in kept]
        if len(held) != len(split.X_holdout):
            raise ValueError(f"hotspot baselines: cannot place the audit hold-out rows of {split.agency!r}.")
        keys, X = keys + held, np.concatenate([X, split.X_holdout[:, lag1]])
    test_keys = np.char.add(np.char.add(split.test_areas.astype(str), "|"), split.test_months.astype(str)).tolist()
    keys, X = keys + test_keys, np.concatenate([X, split.X_test[:, lag1]])

    area_of = {code: i for i, code in enumerate(codes.tolist())}
    month_of = {month: i for i, month in enumerate(months)}
    counts = np.full((len(codes), len(months)), -1, dtype=np.int64)
    values = np.round(np.expm1(X.astype(np.float64))).astype(np.int64)
    for key, value in zip(keys, values, strict=True):
        code, month = key.split("|")
        counts[area_of[code], month_of[month] - 1] = value  # lag 1 of label month t: month t - 1
    last = np.flatnonzero(split.test_months == months[-1])
    for row in last:
        counts[area_of[str(split.test_areas[row])], -1] = split.test_next_counts[row]
    # The test months' recorded counts must agree with the lag features of the month after.
    for row in np.flatnonzero(split.test_months != months[-1]):
        if counts[area_of[str(split.test_areas[row])], month_of[str(split.test_months[row])]] != split.test_next_counts[row]:
            raise ValueError(f"hotspot baselines: counts of {split.agency!r} disagree with its count_lag1 feature.")
    if (counts < 0).any():
        raise ValueError(f"hotspot baselines: the split of {split.agency!r} lacks some area-months.")
    return AreaMonthCounts(codes, months, counts)


def centroid_distances(split: HotspotSplit, codes: np.ndarray, areas: pd.DataFrame) -> np.ndarray:
    """(areas, areas) distances in metres between centroids of the public areas table, on a
    local flat map (longitude scaled by cos of the mean latitude): ample within one force."""
    table = areas.drop_duplicates("LSOA code").set_index("LSOA code")
    missing = [c for c in codes.tolist() if c not in table.index]
    if missing:
        raise ValueError(f"hotspot baselines: area {missing[0]!r} of {split.agency!r} is not in the areas table.")
    lon = np.radians(table.loc[codes, "Longitude"].to_numpy(np.float64))
    lat = np.radians(table.loc[codes, "Latitude"].to_numpy(np.float64))
    x, y = lon * np.cos(lat.mean()) * EARTH_RADIUS_M, lat * EARTH_RADIUS_M
    distances: np.ndarray = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    return distances


def window_sums(counts: np.ndarray, months: int) -> np.ndarray:
    """(areas, months): the sum of the ``months`` months before each month (0 for the first)."""
    padded = np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(counts, axis=1, dtype=np.float64)], axis=1)
    t = np.arange(counts.shape[1])
    out: np.ndarray = padded[:, t] - padded[:, np.maximum(t - months, 0)]
    return out


def baseline_maps(
    counts: np.ndarray,
    distances: np.ndarray,
    *,
    kde_bandwidth_m: float = KDE_BANDWIDTH_M,
    kde_months: int = KDE_MONTHS,
    promap_radius_m: float = PROMAP_RADIUS_M,
    promap_months: int = PROMAP_MONTHS,
) -> dict[str, np.ndarray]:
    """Each baseline's score of every (area, month) from the months before it; (areas, months)."""
    if kde_bandwidth_m <= 0 or promap_radius_m < 0 or kde_months < 1 or promap_months < 1:
        raise ValueError("hotspot baselines: bandwidth and months must be positive.")
    maps = {f"naive-{n}m": window_sums(counts, n) for n in NAIVE_MONTHS}
    kernel = np.exp(-0.5 * (distances / kde_bandwidth_m) ** 2)
    maps["kde"] = kernel @ window_sums(counts, kde_months)
    near = np.where(distances <= promap_radius_m, 1.0 / (1.0 + distances / PROMAP_CELL_M), 0.0)
    # window_sums(n + 1) - window_sums(n): the count of the month n + 1 before each month.
    weighted = np.zeros(counts.shape, dtype=np.float64)
    for tau in range(promap_months):
        weighted += (window_sums(counts, tau + 1) - window_sums(counts, tau)) / (1.0 + tau)
    maps["promap"] = near @ weighted
    return maps


def noisy_counts(counts: np.ndarray, epsilon: float, seed: int, agency: str) -> np.ndarray:
    """``counts`` plus Laplace noise of scale 1/``epsilon`` per area-month: what an agency would
    publish as ε-DP counts (one incident record changes one count by one). Seeded per agency, for
    measuring utility only."""
    if not epsilon > 0:
        raise ValueError(f"hotspot baselines: DP counts need ε > 0 (got {epsilon}).")
    rng = np.random.default_rng([seed, stable_seed("hotspot-dp-counts", agency)])
    out: np.ndarray = counts + rng.laplace(0.0, 1.0 / epsilon, counts.shape)
    return out


def sepp_map(counts: np.ndarray, distances: np.ndarray, fit_months: int) -> tuple[np.ndarray, SeppFit]:
    """The SEPP forecast of every (area, month), (areas, months), with parameters fitted to the
    first ``fit_months`` months only (the training period), and the fit."""
    if not 2 <= fit_months <= counts.shape[1]:
        raise ValueError(f"hotspot baselines: SEPP needs at least 2 training months (got {fit_months}).")
    fit = fit_sepp(counts[:, :fit_months], distances)
    return forecast(fit, counts, distances), fit


def baseline_scores(
    split: HotspotSplit,
    areas: pd.DataFrame,
    intensity: np.ndarray | pd.DataFrame | None = None,
    **settings: Any,
) -> dict[str, np.ndarray]:
    """Every baseline's scores aligned with the split's test rows (``oracle`` only with the true
    intensity); ``settings`` go to ``baseline_maps``."""
    return _scores_and_fit(split, areas, intensity, **settings)[0]


def _scores_and_fit(
    split: HotspotSplit,
    areas: pd.DataFrame,
    intensity: np.ndarray | pd.DataFrame | None = None,
    dp_epsilon: float | None = None,
    seed: int = 0,
    **settings: Any,
) -> tuple[dict[str, np.ndarray], SeppFit]:
    table = counts_from_split(split)
    distances = centroid_distances(split, table.codes, areas)
    maps = baseline_maps(table.counts, distances, **settings)
    if dp_epsilon is not None:
        maps["naive-3m-dp"] = window_sums(noisy_counts(table.counts, dp_epsilon, seed, split.agency), 3)
    first_test = table.months.index(str(min(split.test_months.tolist())))
    maps["sepp"], fit = sepp_map(table.counts, distances, first_test)
    area = pd.Index(table.codes).get_indexer(split.test_areas.astype(str))
    month = pd.Index(table.months).get_indexer(split.test_months.astype(str))
    out = {name: values[area, month] for name, values in maps.items()}
    if intensity is not None:
        out["oracle"] = intensity_for_test(split, intensity) if isinstance(intensity, pd.DataFrame) else np.asarray(intensity, np.float64)
    return out, fit


@dataclass(frozen=True)
class CoverageCurves:
    """PAI of every map at each area share of ``coverages``, pooled and per agency (None where
    undefined, e.g. no incident)."""

    coverages: list[float]
    pooled: dict[str, list[float | None]]  # map -> PAI per coverage
    per_agency: dict[str, dict[str, list[float | None]]]  # agency -> map -> PAI per coverage

    def as_dict(self) -> dict[str, Any]:
        return {"coverages": self.coverages, "metric": "pai", "pooled": self.pooled, "per_agency": self.per_agency}


def coverage_curves(splits: Mapping[str, HotspotSplit], scores: Mapping[str, Mapping[str, np.ndarray]], months: Sequence[str], coverages: Sequence[float] = CURVE_COVERAGES) -> CoverageCurves:
    """PAI against area share for every map of ``scores`` ({agency: {map: test-row scores}})."""
    names = list(next(iter(scores.values())))
    sums = {a: {m: [month_sums(splits[a], scores[a][m], c, months).sum(axis=0) for c in coverages] for m in names} for a in splits}

    def pai(total: np.ndarray) -> float | None:
        value = float(metrics_of_sums(total)["pai"])
        return value if np.isfinite(value) else None

    pooled = {m: [pai(sum((sums[a][m][i] for a in splits), np.zeros(len(FIELDS)))) for i in range(len(coverages))] for m in names}
    per_agency = {a: {m: [pai(x) for x in sums[a][m]] for m in names} for a in splits}
    return CoverageCurves([float(c) for c in coverages], pooled, per_agency)


@dataclass
class HotspotBaselines:
    """Maps (baselines and models) × coverage × metric, with bootstrap intervals, per agency and
    pooled, and each map's pooled PAI difference from the reference naive map."""

    coverages: list[float]
    months: list[str]
    block: int
    replicates: int
    reference: str  # the naive map compared with: the strongest naive one at the headline coverage
    models: list[str]
    baselines: list[str]
    pooled: dict[str, dict[str, dict[str, Estimate]]]  # map -> coverage label -> metric
    per_agency: dict[str, dict[str, dict[str, dict[str, Estimate]]]]  # agency -> map -> ...
    flagged_share: dict[str, float]  # coverage label -> pooled share of areas actually flagged
    vs_reference: dict[str, dict[str, Estimate]]  # map -> coverage label -> PAI difference
    sepp_fits: dict[str, SeppFit] = field(default_factory=dict)  # agency -> its SEPP fit
    curves: CoverageCurves | None = None
    cells: str = "LSOAs"  # what a row is: "LSOAs" or "250 m grid squares"
    dp_epsilon: float | None = None  # ε of naive-3m-dp's simulated Laplace counts
    sentence: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def table(block: dict[str, dict[str, dict[str, Estimate]]]) -> dict[str, Any]:
            return {m: {c: {k: e.as_dict() for k, e in by_metric.items()} for c, by_metric in by_cov.items()} for m, by_cov in block.items()}

        return {
            "coverages": [coverage_label(c) for c in self.coverages],
            "metrics": list(COVERAGE_METRICS),
            "bootstrap": {"method": "circular block bootstrap over test months, percentile interval", "level": 0.95, "block_months": self.block, "replicates": self.replicates, "months": self.months},
            "reference": self.reference,
            "models": self.models,
            "baselines": self.baselines,
            "flagged_share": self.flagged_share,
            "pooled": table(self.pooled),
            "per_agency": {a: table(maps) for a, maps in self.per_agency.items()},
            "pai_minus_reference": {m: {c: e.as_dict() for c, e in by_cov.items()} for m, by_cov in self.vs_reference.items()},
            "sentence": self.sentence,
            "notes": self.notes,
            "sepp": {a: sepp_summary(fit) for a, fit in self.sepp_fits.items()},
            "dp_cost": {name: dp_cost(name, self.dp_epsilon) for name in self.baselines},
            "curves": self.curves.as_dict() if self.curves is not None else None,
            "cells": self.cells,
            "computed_by": "the evaluation harness (not released by any agency; no ε spent)",
        }


def evaluate_baselines(
    splits: Mapping[str, HotspotSplit],
    areas: pd.DataFrame,
    intensity: pd.DataFrame | None = None,
    models: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    *,
    coverages: Sequence[float] = COVERAGES,
    replicates: int = 1000,
    block: int | None = None,
    seed: int = 0,
    dp_epsilon: float | None = DP_COUNTS_EPSILON,
    **settings: Any,
) -> HotspotBaselines:
    """Score the baselines (and ``models``: {model: {agency: scores of its test rows}}) of every
    hotspot split at each coverage, per agency and pooled over agencies (every agency flags its
    own areas; hits and areas are summed), with intervals from one shared set of resampled months.
    ``intensity``: the generator's intensity table (synthetic only) for the oracle."""
    if not splits:
        raise ValueError("hotspot baselines: no hotspot splits.")
    coverages = [float(c) for c in coverages]
    if not coverages or any(not 0 < c <= 1 for c in coverages):
        raise ValueError(f"hotspot baselines: coverages {coverages} must be shares in (0, 1].")
    models = dict(models or {})
    for model, by_agency in models.items():
        if set(by_agency) != set(splits):
            raise ValueError(f"hotspot baselines: model {model!r} has scores for {sorted(by_agency)}, not the agencies {sorted(splits)}.")
    scores: dict[str, dict[str, np.ndarray]] = {}
    fits: dict[str, SeppFit] = {}
    for name, split in splits.items():
        own, fits[name] = _scores_and_fit(split, areas, intensity, dp_epsilon, seed, **settings)
        scores[name] = {**own, **{m: models[m][name] for m in models}}
    result = evaluate_maps(splits, scores, list(models), fits, coverages=coverages, replicates=replicates, block=block, seed=seed)
    result.dp_epsilon = dp_epsilon
    return result


def evaluate_maps(
    splits: Mapping[str, HotspotSplit],
    scores: Mapping[str, Mapping[str, np.ndarray]],
    models: Sequence[str] = (),
    fits: Mapping[str, SeppFit] | None = None,
    *,
    coverages: Sequence[float] = COVERAGES,
    replicates: int = 1000,
    block: int | None = None,
    seed: int = 0,
    cells: str = "LSOAs",
) -> HotspotBaselines:
    """Score the maps ``scores`` ({agency: {map: scores of its test rows}}; the names in
    ``models`` are models, the rest baselines) as ``evaluate_baselines`` does. ``cells`` names
    what the rows are, for the notes."""
    coverages = [float(c) for c in coverages]
    months = sorted(set().union(*(set(s.test_months.tolist()) for s in splits.values())))
    block = default_block(len(months)) if block is None else int(block)
    index = circular_block_indices(len(months), block, replicates, np.random.default_rng(seed))
    names = list(next(iter(scores.values())))
    baselines = [n for n in names if n not in models]
    # sums[map][coverage label] = {agency: (months, fields)}
    sums = {m: {coverage_label(c): {a: month_sums(splits[a], scores[a][m], c, months) for a in splits} for c in coverages} for m in names}
    pooled_sums = {m: {c: sum(by_agency.values()) for c, by_agency in by_cov.items()} for m, by_cov in sums.items()}
    pooled = {m: {c: metric_estimates(np.asarray(s), index) for c, s in by_cov.items()} for m, by_cov in pooled_sums.items()}
    per_agency = {a: {m: {c: metric_estimates(sums[m][c][a], index) for c in sums[m]} for m in names} for a in splits}

    headline = coverage_label(HEADLINE_COVERAGE if HEADLINE_COVERAGE in coverages else coverages[0])
    naive = [f"naive-{n}m" for n in NAIVE_MONTHS]
    reference = max(naive, key=lambda m: pooled[m][headline]["pai"].value or 0.0)
    vs = {m: {c: difference(np.asarray(pooled_sums[m][c]), np.asarray(pooled_sums[reference][c]), index) for c in pooled_sums[m]} for m in names if m != reference}
    flagged = {c: float(np.asarray(s)[:, 2].sum() / np.asarray(s)[:, 3].sum()) for c, s in pooled_sums[reference].items()}
    curves = coverage_curves(splits, scores, months)
    result = HotspotBaselines(coverages, months, block, replicates, reference, list(models), baselines, pooled, per_agency, flagged, vs, dict(fits or {}), curves, cells)
    result.sentence = comparison_sentence(result, headline)
    result.notes = _notes(result, headline)
    return result


def sepp_summary(fit: SeppFit) -> dict[str, Any]:
    """A SEPP fit's parameters for summary.json (the per-area background as its total)."""
    return {
        "background_per_month": float(fit.background.sum()),
        "branching_ratio": fit.theta,
        "omega_per_month": fit.omega,
        "mean_lag_months": fit.mean_lag_months,
        "sigma_m": fit.sigma_m,
        "iterations": fit.iterations,
        "converged": fit.converged,
    }


# What each baseline reads, and what it would cost an agency to publish. One incident record
# changes one area-month count by one, so a histogram of area-month counts with Laplace noise
# of scale 1/ε is ε-DP per incident record; months (and areas) hold disjoint records, so the
# whole history of histograms costs ε (parallel composition). Every count-based baseline is
# post-processing of those counts: computed from DP counts it costs no more than they did.
_FROM_DP_COUNTS = "ε of the DP area-month counts it is computed from, nothing more (post-processing); unit: one incident record"
DP_COSTS: dict[str, str] = {
    "naive-1m": _FROM_DP_COUNTS,
    "naive-3m": _FROM_DP_COUNTS,
    "naive-12m": _FROM_DP_COUNTS,
    "kde": _FROM_DP_COUNTS + " (the bandwidth is fixed, not fitted)",
    "promap": _FROM_DP_COUNTS + " (radius and decay are fixed, not fitted)",
    "sepp": _FROM_DP_COUNTS + " (the EM fit and forecast read only the counts)",
    "oracle": "not computable by any agency: the generator's true intensity (synthetic data only)",
}


def dp_cost(name: str, dp_epsilon: float | None = None) -> dict[str, str]:
    """The DP cost of baseline ``name``: as computed here (exact counts: ε = ∞, not private) and
    what it would cost from DP counts."""
    if name == "naive-3m-dp":
        as_run = f"ε = {dp_epsilon:g} per incident record (pure DP, δ = 0): Laplace counts, scale 1/ε, every area-month once (simulated with seeded noise)"
        return {"as_computed_here": as_run, "from_dp_counts": "it is computed from DP counts: the ε to its left, nothing more"}
    as_run = "n/a: ground truth, not a release" if name == "oracle" else "ε = ∞ (not private): reads the agency's exact counts"
    return {"as_computed_here": as_run, "from_dp_counts": DP_COSTS.get(name, "unknown")}


def comparison_sentence(result: HotspotBaselines, coverage: str) -> str:
    """Which maps beat naive counts at ``coverage`` (pooled PAI difference, 95% interval)."""
    ref = result.pooled[result.reference][coverage]["pai"]
    better: list[str] = []
    same: list[str] = []
    worse: list[str] = []
    for name, by_cov in result.vs_reference.items():
        d = by_cov[coverage]
        if d.value is None:
            continue
        text = f"{name} {d.value:+.2f} [{_f(d.low)}, {_f(d.high)}]"
        (better if d.excludes_zero() and d.value > 0 else worse if d.excludes_zero() else same).append(text)
    parts = [
        f"beat it: {', '.join(better) if better else 'none'}",
        f"no difference the interval can tell: {', '.join(same) if same else 'none'}",
        f"worse: {', '.join(worse) if worse else 'none'}",
    ]
    return (
        f"At {coverage} of areas, pooled over {len(result.per_agency)} agencies and {len(result.months)} test months, against naive counts"
        f" ({result.reference}, PAI {_f(ref.value)} [{_f(ref.low)}, {_f(ref.high)}]), PAI difference with 95% block-bootstrap interval — "
        + "; ".join(parts)
        + "."
    )


def _notes(result: HotspotBaselines, coverage: str) -> list[str]:
    notes = [
        f"Cells are {result.cells} and area shares count cells, not square metres; police.uk snaps locations to anonymous map points, so no street-level claim is made.",
        f"The reference naive map ({result.reference}) is the strongest of {', '.join(f'naive-{n}m' for n in NAIVE_MONTHS)} on the pooled test PAI at {coverage}, so a win over it is conservative.",
        f"Intervals come from {len(result.months)} test months (block of {result.block}); they are rough.",
        "Baselines are computed by the evaluation harness from every agency's counts; released by an agency they would need DP (no ε is charged here).",
        f"SEPP is fitted per agency on its training months only (caps: {SEPP_MAX_LAG} months of triggering, {SEPP_NEIGHBOURS} nearest cells); police.uk has months, not dates, so its decay is in whole months.",
    ]
    oracle = result.pooled.get("oracle")
    if oracle is not None:
        above = [m for m, by_cov in result.pooled.items() if m != "oracle" and any((by_cov[c]["pai"].value or 0) > (oracle[c]["pai"].value or 0) + 1e-12 for c in by_cov)]
        notes.append(f"Above the oracle's pooled PAI at some coverage (luck of the recorded counts): {', '.join(above)}." if above else "No map is above the oracle's pooled PAI at any coverage.")
        best, ceiling = result.pooled[result.reference][coverage]["pai"].value, oracle[coverage]["pai"].value
        if best is not None and ceiling:
            gap = 1 - best / ceiling
            verdict = "the task is trivially easy on these data: counting gets almost everything a forecast could" if gap < TRIVIAL_GAP else "there is room for a forecast to beat counting"
            notes.append(f"The best naive map is {100 * gap:.1f}% below the oracle's PAI at {coverage}: {verdict}.")
    return notes


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _add_months(month: str, n: int) -> str:
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"
