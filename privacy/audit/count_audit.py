"""An empirical audit of a federated count release: does the noise that really reaches the
coordinator hide one record as well as the ledger claims?

The released cell is the agencies' exact counts plus every reporting agency's noise share; a
coordinator colluding with `tolerate` agencies subtracts their shares, so what protects a record
is the sum of the n − t honest shares (`ShareDesign.honest`, each drawn by the real CSPRNG
sampler at `ShareDesign.share_sigma`). The audit draws that sum in two worlds that differ by one
unit in the cell (count c and c + Δ, Δ the histogram's integer sensitivity), and tests "released ≥ threshold" — the optimal test for
a shift, since the noise is symmetric and unimodal. Any (ε, δ)-DP release obeys
TPR ≤ e^ε·FPR + δ, so ε ≥ ln((TPR − δ)/FPR); with Clopper–Pearson bounds (TPR from below, FPR
from above) this is a lower bound on the true ε at `confidence`. The thresholds are fixed before
drawing (0.5 to 2.5 standard deviations of the stated noise) and the best of them is reported
with a Bonferroni correction over them, so trying several costs its confidence honestly.

It audits the share design and the sampler together (a design that splits σ over too many
shares, or a sampler with too little spread, shows a lower bound above the claim); the secure
sum itself is exact (tests: noise off, federated == central), so it is not re-run per draw.
Skellam designs (`noise="skellam"`) are audited the same way: shares from the Skellam sampler at
each share's μ = s²/2, against the Skellam event charged at μ = σ²/2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import beta, norm

from privacy.accounting import epsilon
from privacy.count_release import ShareDesign, count_event, noise_variance
from privacy.mechanisms import DISCRETE_GAUSSIAN, SKELLAM
from privacy.noise import sample_discrete_gaussian, sample_skellam, skellam_mu

__all__ = ["CountAudit", "audit_release", "audit_share_design"]


@dataclass(frozen=True)
class CountAudit:
    """The audit of one histogram's release design: the claim, and what the draws refute."""

    claimed_epsilon: float  # ε of one histogram at the charged σ and Δ (the ledger's event), at δ
    lower_bound: float  # ε the draws refute at `confidence` (0: nothing refuted)
    ceiling: float  # the bound this audit is expected to show if the release is exactly as charged
    delta: float
    honest_shares: int
    share_sigma: float
    sensitivity: int
    noise: str
    draws_per_world: int
    threshold: int
    confidence: float

    @property
    def passed(self) -> bool:
        """The draws do not refute the claim (a lower bound above it means the release leaks more)."""
        return self.lower_bound <= self.claimed_epsilon

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _noise_sums(share_sigma: float, shares: int, draws: int, noise: str = DISCRETE_GAUSSIAN) -> np.ndarray:
    """`draws` sums of `shares` noise shares, each from the release's own sampler."""
    flat = sample_skellam(skellam_mu(share_sigma), draws * shares) if noise == SKELLAM else sample_discrete_gaussian(share_sigma, draws * shares)
    sums: np.ndarray = flat.reshape(draws, shares).sum(axis=1)
    return sums


def _rates(world0: np.ndarray, world1: np.ndarray, threshold: float) -> tuple[int, int]:
    return int((world0 >= threshold).sum()), int((world1 >= threshold).sum())


def _epsilon_of(false_pos: int, true_pos: int, draws: int, delta: float, confidence: float) -> float:
    """ln((TPR_low − δ)/FPR_high), the two bounds at (1 + confidence)/2 each (Bonferroni)."""
    tail = (1.0 - confidence) / 2
    fpr_high = float(beta.ppf(1 - tail, false_pos + 1, draws - false_pos)) if false_pos < draws else 1.0
    tpr_low = float(beta.ppf(tail, true_pos, draws - true_pos + 1)) if true_pos > 0 else 0.0
    if tpr_low - delta <= 0 or fpr_high <= 0:
        return 0.0
    return max(0.0, math.log((tpr_low - delta) / fpr_high))


# Thresholds in standard deviations of the stated noise, fixed before any draw.
THRESHOLD_SIGMAS = (0.5, 1.0, 1.5, 2.0, 2.5)


def audit_release(share_sigma: float, honest_shares: int, charged_sigma: float, delta: float, *, sensitivity: int = 1, draws_per_world: int = 10_000, confidence: float = 0.95, noise: str = DISCRETE_GAUSSIAN) -> CountAudit:
    """Audit a cell whose noise is `honest_shares` shares of `noise` at std `share_sigma` (what is
    left when the coordinator and the colluding agencies subtract theirs) against the ε charged
    for one histogram at `charged_sigma` (Skellam: μ = σ²/2), `sensitivity` and `delta`. World 0
    releases 0 + noise, world 1 releases Δ + noise."""
    if isinstance(sensitivity, bool) or int(sensitivity) != sensitivity or sensitivity < 1:
        raise ValueError(f"sensitivity must be a whole number ≥ 1, got {sensitivity!r}")
    if draws_per_world < 100:
        raise ValueError(f"an audit needs at least 100 draws per world, got {draws_per_world}")
    if share_sigma <= 0 or honest_shares < 1:
        raise ValueError("no noise: nothing to audit (the release is not DP)")
    world0 = _noise_sums(share_sigma, honest_shares, draws_per_world, noise)
    world1 = _noise_sums(share_sigma, honest_shares, draws_per_world, noise) + sensitivity
    spread = math.sqrt(honest_shares * noise_variance(noise, share_sigma))
    each = 1 - (1 - confidence) / len(THRESHOLD_SIGMAS)  # Bonferroni over the thresholds tried
    lower, threshold, ceiling = 0.0, 0, 0.0
    for z in THRESHOLD_SIGMAS:
        at = max(1, round(sensitivity / 2 + z * spread))
        found = _epsilon_of(*_rates(world0, world1, at), draws_per_world, delta, each)
        if found > lower:
            lower, threshold = found, at
        # Expected counts at this threshold under the charged noise (normal approximation, with
        # the continuity correction of an integer threshold): what an exact release would show.
        expected = (norm.sf((at - 0.5) / charged_sigma), norm.sf((at - 0.5 - sensitivity) / charged_sigma))
        false_pos, true_pos = (round(float(p) * draws_per_world) for p in expected)
        ceiling = max(ceiling, _epsilon_of(false_pos, true_pos, draws_per_world, delta, each))
    claimed = epsilon([count_event(charged_sigma, sensitivity=int(sensitivity), noise=noise)], delta, "pld")
    return CountAudit(claimed, lower, ceiling, delta, honest_shares, share_sigma, int(sensitivity), noise, draws_per_world, threshold, confidence)


def audit_share_design(design: ShareDesign, delta: float, *, draws_per_world: int = 10_000, confidence: float = 0.95) -> CountAudit:
    """`audit_release` of a federated design as analytics releases it: its honest shares against
    the σ each agency is charged (`ShareDesign.guaranteed_sigma`), with the design's noise."""
    return audit_release(design.share_sigma, design.honest, design.guaranteed_sigma, delta, draws_per_world=draws_per_world, confidence=confidence, noise=design.noise)
