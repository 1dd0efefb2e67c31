"""Fairness views: how unevenly utility falls on agencies, and where hotspot flags fall by area
deprivation compared with where incidents (truly, and as recorded) happen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
QUINTILES = 5


def utility_spread(
    per_agency: Mapping[str, Mapping[str, float | None]],
    sizes: Mapping[str, int],
    metric: str,
    *,
    higher_is_better: bool | None = None,
) -> dict[str, Any]:
    """How ``metric`` varies over agencies (those with a value for it).

    Returns min, max, range (max - min), std (population, over agencies), worst_agency and
    worst (the lowest value, or the highest for a lower-is-better metric such as log loss),
    smallest_agency / smallest (the value of the agency with the smallest ``sizes``), largest_agency
    / largest, n_agencies, and size_rank_correlation: Spearman's rank correlation between agency
    size and utility (utility = the metric, or minus it when lower is better), so +1 means the
    larger an agency the better it does (small agencies left behind), 0 no relation, -1 small
    agencies do best. None with fewer than 3 agencies or when sizes or values are all equal.
    """
    if higher_is_better is None:
        higher_is_better = metric not in LOWER_IS_BETTER
    missing = [a for a in per_agency if a not in sizes]
    if missing:
        raise ValueError(f"utility_spread: no size for agency(ies) {missing}.")
    values = {a: float(x) for a, m in per_agency.items() if (x := m.get(metric)) is not None}
    if not values:
        keys = {"min", "max", "range", "std", "worst_agency", "worst", "smallest_agency", "smallest",
                "largest_agency", "largest", "size_rank_correlation"}
        return {"metric": metric, "n_agencies": 0, **dict.fromkeys(keys)}
    names = sorted(values)  # a fixed order, so ties resolve the same way every time
    v = np.array([values[a] for a in names])
    size = np.array([float(sizes[a]) for a in names])
    worst = names[int(np.argmin(v) if higher_is_better else np.argmax(v))]
    smallest, largest = names[int(np.argmin(size))], names[int(np.argmax(size))]
    utility = v if higher_is_better else -v
    return {
        "metric": metric,
        "n_agencies": len(names),
        "min": float(v.min()),
        "max": float(v.max()),
        "range": float(v.max() - v.min()),
        "std": float(v.std()),
        "worst_agency": worst,
        "worst": values[worst],
        "smallest_agency": smallest,
        "smallest": values[smallest],
        "largest_agency": largest,
        "largest": values[largest],
        "size_rank_correlation": spearman(size, utility) if len(names) >= 3 else None,
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None if either side is constant."""
    rx, ry = _average_ranks(np.asarray(x, float)), _average_ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else None


def deprivation_quintiles(areas: pd.DataFrame) -> np.ndarray:
    """The 4 inner edges (20th, 40th, 60th, 80th percentiles) of ``deprivation`` over every area
    of the public table (all agencies, each LSOA once), so quintiles mean the same everywhere."""
    if "deprivation" not in areas.columns or "LSOA code" not in areas.columns:
        raise ValueError(
            f"deprivation_quintiles: the areas table needs 'LSOA code' and 'deprivation'; it has {list(areas.columns)}."
        )
    values = pd.to_numeric(areas.drop_duplicates("LSOA code")["deprivation"], errors="coerce").to_numpy(float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("deprivation_quintiles: the areas table has no numeric deprivation value.")
    return np.asarray(np.quantile(values, np.arange(1, QUINTILES) / QUINTILES))


def quintile_of(deprivation: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Quintile 1 (least deprived) .. 5 (most deprived); a value on an edge goes up."""
    return np.searchsorted(np.asarray(edges, float), np.asarray(deprivation, float), side="right") + 1


def flag_shares_by_quintile(
    flags: np.ndarray,
    deprivation: np.ndarray,
    true_counts: np.ndarray | None,
    recorded_counts: np.ndarray,
    quintile_edges: np.ndarray,
) -> list[dict[str, Any]]:
    """Per deprivation quintile, its share of the hotspot flags against its share of true and
    of recorded incidents. Inputs are aligned per (area, month) row, e.g. one agency's test rows
    (``hotspot_metrics.flag_weights``, ``split.test_deprivation``, the ground-truth intensity,
    ``split.test_next_counts``) or several agencies' rows concatenated (then larger agencies
    weigh more, as they hold more flags).

    Each row: quintile, deprivation_from / deprivation_to (None at the open ends), area_months,
    flag_share, true_share (None without ground truth), recorded_share, flag_minus_true,
    flag_minus_recorded. A share is None when its total is 0.
    """
    flags = _vector(flags, "flags")
    n = len(flags)
    deprivation = _vector(deprivation, "deprivation", n)
    recorded = _vector(recorded_counts, "recorded_counts", n)
    true = None if true_counts is None else _vector(true_counts, "true_counts", n)
    edges = np.asarray(quintile_edges, float).reshape(-1)
    if len(edges) != QUINTILES - 1 or np.any(np.diff(edges) < 0):
        raise ValueError(f"flag_shares_by_quintile: need {QUINTILES - 1} ascending quintile edges, got {edges.tolist()}.")
    if (flags < 0).any() or (recorded < 0).any() or (true is not None and (true < 0).any()):
        raise ValueError("flag_shares_by_quintile: flags and counts must be >= 0.")
    quintile = quintile_of(deprivation, edges)
    bounds = [None, *edges.tolist(), None]
    rows = []
    for q in range(1, QUINTILES + 1):
        member = quintile == q
        flag_share = _share(flags, member)
        true_share = None if true is None else _share(true, member)
        recorded_share = _share(recorded, member)
        rows.append({
            "quintile": q,
            "deprivation_from": bounds[q - 1],
            "deprivation_to": bounds[q],
            "area_months": int(member.sum()),
            "flag_share": flag_share,
            "true_share": true_share,
            "recorded_share": recorded_share,
            "flag_minus_true": _difference(flag_share, true_share),
            "flag_minus_recorded": _difference(flag_share, recorded_share),
        })
    return rows


def flag_disparity(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Single figures of ``flag_shares_by_quintile`` rows to compare across architectures and
    DP levels:

    - max_gap_true: max over quintiles of |flag share - true share| (0 = flags fall where
      incidents truly happen; 0.1 = some quintile gets 10 points more or fewer of the flags than
      of the true incidents). The headline figure on synthetic data;
    - max_gap_recorded: the same against recorded incidents (real data has only this);
    - most_deprived_ratio_true / _recorded: flag share / incident share of quintile 5
      (> 1: the most deprived areas are flagged more than their share of incidents).

    Even flags by the true intensity have a gap: flagging the top k concentrates the flags on the
    highest-rate areas, which are more often deprived. Compare a model with the same figures of
    the oracle's flags (``hotspot_metrics.oracle_scores``), not with 0.
    """
    def max_gap(key: str) -> float | None:
        gaps = [abs(r[key]) for r in rows if r[key] is not None]
        return float(max(gaps)) if gaps else None

    top = next((r for r in rows if r["quintile"] == QUINTILES), None)

    def ratio(key: str) -> float | None:
        if top is None or top["flag_share"] is None or not top[key]:
            return None
        return float(top["flag_share"] / top[key])

    return {
        "max_gap_true": max_gap("flag_minus_true"),
        "max_gap_recorded": max_gap("flag_minus_recorded"),
        "most_deprived_ratio_true": ratio("true_share"),
        "most_deprived_ratio_recorded": ratio("recorded_share"),
    }


def _vector(values: np.ndarray, what: str, n: int | None = None) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if n is not None and len(v) != n:
        raise ValueError(f"flag_shares_by_quintile: {len(v)} {what} for {n} flags.")
    if not np.isfinite(v).all():
        raise ValueError(f"flag_shares_by_quintile: {what} contain NaN or infinity.")
    return v


def _share(values: np.ndarray, member: np.ndarray) -> float | None:
    total = values.sum()
    return float(values[member].sum() / total) if total > 0 else None


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _average_ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]
