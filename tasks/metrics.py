"""Binary classification metrics (numpy only) and their weighted mean over agencies.

A metric that is undefined on some data (AUC with one class present, F1 with no positives and no
predicted positives) is None rather than a made-up number, and ``weighted_mean`` skips it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

LOG_LOSS_EPS = 1e-7
METRIC_KEYS = ("accuracy", "auc", "f1", "log_loss", "n", "positive_rate", "brier")


def binary_metrics(y_true: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float | None]:
    """Metrics of probabilities ``p`` against 0/1 labels; a row is predicted positive if p >= threshold.

    ``positive_rate`` is the share of true positives in ``y_true`` (the base rate).
    """
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if len(y) != len(p):
        raise ValueError(f"binary_metrics: {len(y)} labels but {len(p)} probabilities.")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("binary_metrics: labels must be 0 or 1.")
    if not np.isfinite(p).all():
        raise ValueError("binary_metrics: probabilities contain NaN or infinity.")
    n = len(y)
    if n == 0:
        return {key: (0 if key == "n" else None) for key in METRIC_KEYS}

    positive = y == 1.0
    predicted = p >= threshold
    tp = int((predicted & positive).sum())
    f1_denominator = 2 * tp + int((predicted & ~positive).sum()) + int((~predicted & positive).sum())
    q = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return {
        "accuracy": float((predicted == positive).mean()),
        "auc": auc(y, p),
        "f1": 2 * tp / f1_denominator if f1_denominator else None,
        "log_loss": float(-np.mean(np.where(positive, np.log(q), np.log1p(-q)))),
        "n": n,
        "positive_rate": float(positive.mean()),
        "brier": float(np.mean((p - y) ** 2)),
    }


def auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney statistic with average ranks for ties (a tie counts 1/2);
    None when only one class is present."""
    positive = np.asarray(y_true).reshape(-1) == 1
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(score, dtype=np.float64).reshape(-1))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    return (last_rank - (counts - 1) / 2)[inverse]


def weighted_mean(
    per_agency: Mapping[str, Mapping[str, float | None]],
    weights: Mapping[str, float],
) -> dict[str, float | None]:
    """Each metric averaged over agencies with ``weights`` (e.g. n_test), skipping None values.

    A metric with no value (or zero total weight) is None. ``n`` is a count, so it is summed.
    """
    missing = [a for a in per_agency if a not in weights]
    if missing:
        raise ValueError(f"weighted_mean: no weight for agency(ies) {missing}.")
    if any(weights[a] < 0 for a in per_agency):
        raise ValueError("weighted_mean: weights must be non-negative.")
    keys = list(dict.fromkeys(k for metrics in per_agency.values() for k in metrics))
    result: dict[str, float | None] = {}
    for key in keys:
        present = [(weights[a], v) for a, m in per_agency.items() if (v := m.get(key)) is not None]
        if key == "n":
            result[key] = sum(int(v) for _, v in present)
            continue
        total = sum(w for w, _ in present)
        result[key] = sum(w * v for w, v in present) / total if total > 0 else None
    return result
