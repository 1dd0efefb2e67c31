"""Accuracy figures of a released histogram against the exact pooled counts (the harness's
comparison; the exact counts are what the `central` mode pools)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Errors:
    mae: float  # mean absolute error over all cells
    relative_error: float | None  # mean |error| / exact over cells with exact ≥ threshold (None: no such cell)
    cells_above: int  # how many cells that is
    cells: int


def count_errors(released: np.ndarray, exact: np.ndarray, threshold: int) -> Errors:
    error = np.abs(released.astype(float) - exact.astype(float))
    above = exact >= threshold
    rel = float((error[above] / exact[above]).mean()) if above.any() else None
    return Errors(float(error.mean()) if error.size else 0.0, rel, int(above.sum()), int(exact.size))


def value_errors(released: np.ndarray, truth: np.ndarray, records: np.ndarray, threshold: int) -> Errors:
    """Errors of a sum or mean per cell against the raw truth, on cells where both are finite;
    relative (|error| / |truth|) on cells with at least `threshold` records with a value."""
    known = np.isfinite(released) & np.isfinite(truth)
    error = np.abs(released - truth)
    above = known & (records >= threshold) & (truth != 0)
    rel = float((error[above] / np.abs(truth[above])).mean()) if above.any() else None
    return Errors(float(error[known].mean()) if known.any() else math.nan, rel, int(above.sum()), int(truth.size))


def rates(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator ÷ denominator per cell, NaN where the denominator is not positive."""
    den = denominator.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, numerator.astype(float) / np.where(den > 0, den, 1.0), np.nan)


def rate_errors(released: np.ndarray, exact: np.ndarray, exact_denominator: np.ndarray, threshold: int) -> Errors:
    """Errors of rates on cells whose exact denominator is positive; relative on those ≥ threshold."""
    known = (exact_denominator > 0) & np.isfinite(released) & np.isfinite(exact)
    error = np.abs(released - exact)
    above = known & (exact_denominator >= threshold) & (exact > 0)
    rel = float((error[above] / exact[above]).mean()) if above.any() else None
    return Errors(float(error[known].mean()) if known.any() else math.nan, rel, int(above.sum()), int(exact.size))


def rate_half_width(numerator: np.ndarray, denominator: np.ndarray, variance_numerator: float, variance_denominator: float, z: float) -> np.ndarray:
    """95% half-width of n/d from the delta method: √(var_n + r²·var_d) / d (NaN where d ≤ 0)."""
    r = rates(numerator, denominator)
    den = denominator.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, z * np.sqrt(variance_numerator + r * r * variance_denominator) / np.where(den > 0, den, 1.0), np.nan)


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values (ties: the lower index first, a public rule)."""
    order = np.lexsort((np.arange(values.size), -values.astype(float)))
    return order[: min(k, values.size)]


@dataclass(frozen=True)
class TopK:
    overlap: float  # |released top-k ∩ exact top-k| / k
    pai: float  # share of all records in the released top-k areas ÷ share of areas flagged
    pai_exact: float  # the same for the exact top-k map (the best a map of k areas can do)


def top_k_scores(released: np.ndarray, exact: np.ndarray, k: int) -> TopK:
    chosen, best = top_k(released, k), top_k(exact, k)
    total = float(exact.sum())
    area_share = len(chosen) / exact.size

    def pai(idx: np.ndarray) -> float:
        return float(exact[idx].sum()) / total / area_share if total > 0 else math.nan

    return TopK(len(set(chosen.tolist()) & set(best.tolist())) / len(best), pai(chosen), pai(best))
