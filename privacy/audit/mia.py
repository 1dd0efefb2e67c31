"""Membership inference on a trained model: does it treat its training records differently from
records it never saw?

The attack is the loss threshold of Yeom et al. (2018): a record the model was trained on tends to
have a lower loss, so the score is −loss (higher = more likely a member). `calibrated_mia_scores`
is the stronger "difficulty calibrated" variant (Watson et al. 2022): subtract what a reference
model that never saw the record makes of it, so records that are merely easy stop looking like
members.

Members and non-members must be exchangeable, or the attack measures something else: Peel's test
split is the agency's last months, and a model scores worse on later months whether or not it
leaks. `holdout_same_months` picks the non-members from the training months instead, each by a
keyed hash of its own id; the audited model is then trained on the remaining rows only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from privacy.audit.bounds import mia_bounds
from privacy.audit.roc import auc, auc_null_sd, tpr_at_fpr

_CHUNK = 65_536  # rows per forward pass: bounds memory


def logits(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """The model's output logit per row, float64, without gradients."""
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if X_t.ndim != 2:
        raise ValueError(f"logits: features must be a 2-D matrix, got shape {tuple(X_t.shape)}.")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(X_t[i : i + _CHUNK]).double().reshape(-1) for i in range(0, len(X_t), _CHUNK)]
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy() if parts else np.empty(0, dtype=np.float64)


def margins(model: nn.Module, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The logit signed towards each row's 0/1 label: large when the model is sure of the label."""
    z = logits(model, X)
    y = _labels(y, len(z))
    return np.where(y > 0.5, z, -z)


def mia_scores(model: nn.Module, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Loss-threshold attack scores: −(binary cross-entropy) per row; higher = more likely a member.

    Computed from the logit (−softplus(−margin)), so confident rows keep distinct scores instead
    of all rounding to a loss of 0.
    """
    m = margins(model, X, y)
    return np.asarray(-np.logaddexp(0.0, -m))


def calibrated_mia_scores(model: nn.Module, reference: nn.Module, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Difficulty-calibrated scores: the target model's −loss minus a reference model's −loss.
    `reference` must be trained like the target on records disjoint from both members and
    non-members; then only what the target learnt from the record itself raises the score."""
    return np.asarray(mia_scores(model, X, y) - mia_scores(reference, X, y))


def holdout_key(seed: int, agency: str) -> bytes:
    """The HMAC key of an agency's audit holdout in a run with `seed` (distinct per agency)."""
    return hashlib.sha256(f"peel-audit-holdout\0{int(seed)}\0{agency}".encode()).digest()


def holdout_same_months(record_keys: Sequence[str] | np.ndarray, fraction: float, key: bytes) -> np.ndarray:
    """A boolean mask over training rows: True = held out as a non-member for the audit.

    Row i is held out when HMAC-SHA256(key, record_keys[i]), read as a number in [0, 1), is
    below `fraction`: each row's role depends on its own key alone, so adding or removing one
    record changes no other record's role (a draw over all rows would reshuffle dozens). Every
    month's rows are thinned the same way, so members and non-members come from the same months
    in the same proportions (each month holds out ≈ fraction of its rows, binomially).
    Rows with equal keys share a role. The audit run trains the model on the rows where the mask
    is False and nothing else (with DP, its σ is calibrated to that smaller count); its members
    are then those rows, its non-members the held-out ones.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout_same_months: fraction must be in (0, 1), got {fraction}.")
    if not isinstance(key, bytes) or not key:
        raise ValueError("holdout_same_months: key must be non-empty bytes (see holdout_key).")
    keys = np.asarray(record_keys).astype(str).reshape(-1)
    threshold = int(fraction * 2.0**64)
    base = hmac.new(key, digestmod=hashlib.sha256)

    def held(k: str) -> bool:
        mac = base.copy()
        mac.update(k.encode("utf-8"))
        return int.from_bytes(mac.digest()[:8], "big") < threshold

    return np.fromiter((held(k) for k in keys), dtype=bool, count=len(keys))


def balanced(member_scores: np.ndarray, nonmember_scores: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Both score sets cut to the smaller one's size by a random subsample (without replacement),
    so the attack is judged on a 50/50 prior."""
    a, b = np.asarray(member_scores).reshape(-1), np.asarray(nonmember_scores).reshape(-1)
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)

    def pick(s: np.ndarray) -> np.ndarray:
        return s if len(s) == n else s[np.sort(rng.choice(len(s), size=n, replace=False))]

    return pick(a), pick(b)


def mia_report(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    *,
    balance: bool = False,
    seed: int = 0,
) -> dict[str, float | int]:
    """Attack success from its scores: `auc` (exact, ties count ½), `tpr_at_1pct_fpr` (TPR on the
    empirical ROC at FPR = 1%, linear between vertices — see `roc.tpr_at_fpr`), the counts
    used, and `auc_null_sd` (the AUC's spread for an attack that learns nothing, at these counts).
    `balance=True` first subsamples the larger group to the smaller one's size."""
    members, nonmembers = np.asarray(member_scores, np.float64), np.asarray(nonmember_scores, np.float64)
    if balance:
        members, nonmembers = balanced(members, nonmembers, seed)
    return {
        "auc": auc(members, nonmembers),
        "tpr_at_1pct_fpr": tpr_at_fpr(members, nonmembers, 0.01),
        "n_members": int(members.size),
        "n_nonmembers": int(nonmembers.size),
        "auc_null_sd": auc_null_sd(members.size, nonmembers.size),
    }


def mia_audit(
    model: nn.Module,
    members: tuple[np.ndarray, np.ndarray],
    nonmembers: tuple[np.ndarray, np.ndarray],
    *,
    balance: bool = True,
    seed: int = 0,
    epsilon: float | None = None,
    delta: float | None = None,
) -> dict[str, Any]:
    """The loss-threshold attack on `model`, members = (X, y) it was trained on, non-members =
    (X, y) held out from the same months. With the claimed (ε, δ), the report also carries
    what that claim allows (`bound`: `mia_bounds`); compare the measured values with it and with
    `auc_null_sd` (a measured value above the bound by less than its sampling error is noise)."""
    report: dict[str, Any] = mia_report(mia_scores(model, *members), mia_scores(model, *nonmembers), balance=balance, seed=seed)
    if epsilon is not None:
        if delta is None:
            raise ValueError("mia_audit: give delta together with epsilon.")
        report["bound"] = mia_bounds(epsilon, delta)
    return report


def _labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{n} feature rows but {len(y)} labels.")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1.")
    return y
