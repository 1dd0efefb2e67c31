"""Exact ROC of an attack from its scores on members and non-members (higher = "member").

The curve is the empirical one: a vertex at every distinct score (predict "member" when
score ≥ t), from (0, 0) to (1, 1). A group of tied scores moves both rates at once, so ties give a
diagonal segment — the attack that breaks ties at random. Between vertices the curve is linear,
which is what an attack that randomises between two neighbouring thresholds achieves; so a TPR
read off the curve at any FPR (`tpr_at_fpr`) is the TPR of a real (randomised) attack.
"""

from __future__ import annotations

import numpy as np


def roc_curve(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every vertex of the empirical ROC, both starting at 0 and ending at 1."""
    pos, neg = _scores(member_scores, "member"), _scores(nonmember_scores, "non-member")
    scores = np.concatenate([pos, neg])
    is_member = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    # last index of each group of equal scores: the curve only has a vertex after a whole group
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp = np.cumsum(is_member)[ends]
    fp = np.cumsum(~is_member)[ends]
    tpr = np.r_[0.0, tp / len(pos)]
    fpr = np.r_[0.0, fp / len(neg)]
    return fpr, tpr


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """Area under the empirical ROC (trapezoids) = P(member score > non-member score) + ½·P(tie),
    the Mann–Whitney statistic."""
    fpr, tpr = roc_curve(member_scores, nonmember_scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float = 0.01) -> float:
    """TPR of the empirical ROC at exactly `fpr`, linearly interpolated between vertices.

    Where the curve is vertical at `fpr` (several vertices share it), the highest TPR is taken:
    the best attack with that false-positive rate. With n non-members FPR moves in steps of 1/n,
    so below 1/n the value comes from the segment leaving (0, 0) — say n in the report.
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"tpr_at_fpr: fpr must be in [0, 1], got {fpr}.")
    xs, ys = roc_curve(member_scores, nonmember_scores)
    at = xs == fpr
    if at.any():  # a vertex (or a vertical run of them) at exactly fpr: the highest is reachable
        return float(ys[at].max())
    # the segment crossing fpr runs from the last vertex left of it to the first right of it
    j = int(np.searchsorted(xs, fpr, side="left"))
    i = j - 1
    return float(ys[i] + (ys[j] - ys[i]) * (fpr - xs[i]) / (xs[j] - xs[i]))


def auc_null_sd(n_members: int, n_nonmembers: int) -> float:
    """Standard deviation of the AUC of a useless attack (scores of both groups from one
    continuous distribution): sqrt((n₁ + n₂ + 1) / (12·n₁·n₂)). An AUC within ~2–3 of these
    of 0.5 is not evidence of leakage."""
    if n_members < 1 or n_nonmembers < 1:
        raise ValueError(f"auc_null_sd: need at least one of each, got {n_members}, {n_nonmembers}.")
    return float(np.sqrt((n_members + n_nonmembers + 1) / (12.0 * n_members * n_nonmembers)))


def _scores(values: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"ROC: no {what} scores; need at least one.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"ROC: {int((~np.isfinite(a)).sum())} {what} scores are NaN or infinite.")
    return a
