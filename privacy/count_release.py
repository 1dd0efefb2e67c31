"""DP histograms (counts per cell) with discrete Gaussian noise: σ from an ε share, the ledger
event each release is charged as, and how federated agencies split the noise into shares.

The unit is one incident record under add/remove-one neighbours: a record falls in exactly one
cell of a histogram, so adding or removing it changes one cell by 1 (L1 = L2 sensitivity 1).
The privacy loss of a vector with one coordinate moved by 1 is that of the one-dimensional
discrete Gaussian at sensitivity 1, so a whole histogram is one `discrete-gaussian` event.
A fixed-point sum (tasks.analytics) moves one cell by up to QUANTA steps: the same event at that
integer sensitivity; under the person unit the sensitivity is the caps' L2 bound
(privacy.person_histogram). `calibrate_noise_multiplier` gives histograms of different
sensitivities one noise-to-sensitivity ratio.

Federated noise (`ShareDesign`): each of n agencies adds its own N_Z(0, s²) to its counts, and
only the sum of the shares leaves secure aggregation. Up to t agencies may drop out before
masking or collude with the coordinator (who then subtracts their shares): the sum still
carries at least n − t honest shares, s = σ / √(n − t), so its honest noise is a sum of n − t
independent N_Z(0, s²) plus independent noise the data do not affect (post-processing). A sum
of k discrete Gaussians is not exactly a discrete Gaussian: by Kairouz, Liu and Steinke
("The Distributed Discrete Gaussian Mechanism", ICML 2021, Prop. 14's τ) it is within total
variation τ_k = 10 Σ_{j=1}^{k−1} exp(−2π² s² j/(j+1)) of N_Z(0, k s²) per cell. A mechanism whose
noise is within TV τ of one that is (ε, δ)-DP is (ε, δ + (1 + e^ε) τ)-DP; `delta_slack` states
that term for a whole histogram and the share σ is floored (`share_floor`: the smallest s that
keeps it below a given slack; MIN_SHARE_SIGMA by default) so it stays far below δ. Each agency charges its ledger the discrete Gaussian of σ_guard = √(n − t)·s ≥ σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from privacy.accounting import ADD_REMOVE, MAX_SIGMA, CalibrationError, epsilon
from privacy.mechanisms import DISCRETE_GAUSSIAN, MechanismEvent
from privacy.noise import discrete_gaussian_variance

__all__ = ["MIN_SHARE_SIGMA", "Z95", "ShareDesign", "calibrate_count_sigma", "calibrate_noise_multiplier", "count_event", "half_width", "share_floor", "sum_tv_bound"]

COUNT_SENSITIVITY = 1  # one record, one cell, ±1
# Smallest share σ: at s = 2 the sum's distance from a discrete Gaussian is ~1e-16 per cell
# (sum_tv_bound), negligible against any δ; at s = 1 it is ~1e-3, not negligible.
MIN_SHARE_SIGMA = 2.0
MAX_SHARE_FLOOR = 8.0  # a floor search stops here (huge ε budgets: e^ε multiplies the slack)
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def count_event(sigma: float, releases: int = 1, sensitivity: int = COUNT_SENSITIVITY) -> MechanismEvent:
    """The ledger event of `releases` histograms with discrete Gaussian noise σ per cell, one
    unit moving them by at most `sensitivity` (integer units: 1 for a count; QUANTA fixed-point
    steps for a sum, tasks.analytics; more under a person cap, privacy.person_histogram)."""
    return MechanismEvent(DISCRETE_GAUSSIAN, sigma, sensitivity, 1.0, releases)


def calibrate_noise_multiplier(target_epsilon: float, delta: float, sensitivities: list[int], neighbouring: str = ADD_REMOVE, rel_tol: float = 0.002) -> float:
    """Smallest multiplier m (to `rel_tol`) such that histograms with discrete Gaussian σ_i =
    m·Δ_i at integer sensitivities Δ_i spend at most `target_epsilon` at `delta` together: every
    histogram gets the same noise-to-sensitivity ratio, so each spends the same share (PLD,
    exact for the discrete Gaussian). All Δ_i = 1 gives `calibrate_count_sigma`'s σ."""
    if set(sensitivities) == {COUNT_SENSITIVITY}:
        return calibrate_count_sigma(target_epsilon, delta, neighbouring, rel_tol, releases=len(sensitivities))
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise CalibrationError(f"an ε share must be a finite number > 0, got {target_epsilon!r}")
    groups = {d: sensitivities.count(d) for d in set(sensitivities)}

    def spent(m: float) -> float:
        return epsilon([count_event(m * d, n, d) for d, n in sorted(groups.items())], delta, "pld", neighbouring)

    # The discrete Gaussian at σ = m·Δ, shift Δ, is within float noise of the one at (m, 1) for m ≳ 1:
    # start the search at the count σ and bracket it.
    guess = calibrate_count_sigma(target_epsilon, delta, neighbouring, 0.02, releases=len(sensitivities))
    lo, hi = guess / 1.1, guess * 1.1
    while spent(hi) > target_epsilon:
        lo, hi = hi, hi * 1.5
        if hi > MAX_SIGMA * 100:
            raise CalibrationError(f"no discrete Gaussian multiplier up to {MAX_SIGMA * 100:g} spends ε ≤ {target_epsilon:g} at δ={delta:g}")
    while spent(lo) <= target_epsilon and lo > 0.05:
        lo, hi = lo / 1.5, lo
    while hi / lo > 1 + rel_tol:
        mid = math.sqrt(lo * hi)
        if spent(mid) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi


def calibrate_count_sigma(target_epsilon: float, delta: float, neighbouring: str = ADD_REMOVE, rel_tol: float = 0.002, releases: int = 1) -> float:
    """Smallest σ (to `rel_tol`) such that `releases` discrete Gaussian histograms at σ spend at
    most `target_epsilon` at `delta` together (PLD, exact for the discrete Gaussian)."""
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise CalibrationError(f"an ε share must be a finite number > 0, got {target_epsilon!r}")

    def spent(sigma: float) -> float:
        return epsilon([count_event(sigma, releases)], delta, "pld", neighbouring)

    lo, hi = 0.05, 1.0
    while spent(hi) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > MAX_SIGMA * 100:
            raise CalibrationError(f"no discrete Gaussian σ up to {MAX_SIGMA * 100:g} spends ε ≤ {target_epsilon:g} at δ={delta:g}")
    while hi / lo > 1 + rel_tol:
        mid = math.sqrt(lo * hi)
        if spent(mid) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi


def sum_tv_bound(share_sigma: float, shares: int) -> float:
    """KLS21's τ: total variation between a sum of `shares` independent N_Z(0, s²) and N_Z(0, shares·s²), per cell."""
    s2 = share_sigma * share_sigma
    return 10.0 * sum(math.exp(-2 * math.pi**2 * s2 * j / (j + 1)) for j in range(1, shares))


def delta_slack(share_sigma: float, shares: int, epsilon_: float, cells: int) -> float:
    """(1 + e^ε)·cells·τ: what a histogram's noise sum being only close to a discrete Gaussian adds
    to δ, ε being the one the guarantee is stated at (hybrid argument; slacks add over releases)."""
    return (1 + math.exp(min(epsilon_, 700.0))) * cells * sum_tv_bound(share_sigma, shares)


def share_floor(cells: int, shares: int, epsilon_: float, max_slack: float) -> float:
    """The smallest share σ (to 1%) whose `delta_slack` stays ≤ `max_slack` (searched up to
    MAX_SHARE_FLOOR; above it the caller's slack check refuses)."""
    if delta_slack(MAX_SHARE_FLOOR, shares, epsilon_, cells) > max_slack:
        return MAX_SHARE_FLOOR
    lo, hi = 0.25, MAX_SHARE_FLOOR
    while hi / lo > 1.01:
        mid = math.sqrt(lo * hi)
        if delta_slack(mid, shares, epsilon_, cells) > max_slack:
            lo = mid
        else:
            hi = mid
    return hi


def half_width(variance: float) -> float:
    """95% interval half-width of a released value whose noise has this variance (normal
    approximation: the discrete Gaussian and its sums are within ~1e-16 of normal quantiles at σ ≥ 2)."""
    return Z95 * math.sqrt(variance)


@dataclass(frozen=True)
class ShareDesign:
    """Federated noise shares: `agencies` agencies, up to `tolerate` of which may drop out or
    collude with the coordinator, and a target σ the released sum must keep."""

    agencies: int
    tolerate: int
    sigma: float
    floor: float = MIN_SHARE_SIGMA  # the least share σ (share_floor)

    def __post_init__(self) -> None:
        if self.agencies < 1:
            raise ValueError("a federation needs at least one agency")
        if not 0 <= self.tolerate < self.agencies:
            raise ValueError(f"tolerate must be in [0, {self.agencies - 1}] for {self.agencies} agencies, got {self.tolerate}")

    @property
    def honest(self) -> int:
        """Shares the released sum is guaranteed to carry: n − t."""
        return self.agencies - self.tolerate

    @property
    def share_sigma(self) -> float:
        """σ of each agency's share: σ/√(n − t), at least `floor` (σ = 0: noise off)."""
        if self.sigma == 0:
            return 0.0
        return max(self.sigma / math.sqrt(self.honest), self.floor)

    @property
    def guaranteed_sigma(self) -> float:
        """σ of the discrete Gaussian each agency charges: √(n − t)·s (≥ σ)."""
        return math.sqrt(self.honest) * self.share_sigma

    def released_variance(self, reporting: int) -> float:
        """Variance of the noise in a sum of `reporting` agencies' shares."""
        return reporting * discrete_gaussian_variance(self.share_sigma)

    def delta_slack(self, epsilon_: float, cells: int) -> float:
        """(1 + e^ε)·cells·τ: what the sum's distance from a discrete Gaussian adds to δ per histogram."""
        return delta_slack(self.share_sigma, self.honest, epsilon_, cells)
