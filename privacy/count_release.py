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

Skellam noise (`noise="skellam"`, Agarwal, Kairouz, Liu 2021) removes that floor: a sum of
independent Sk(μ_i) is exactly Sk(Σ μ_i), so each of the n agencies adds Sk(μ/(n − t)), μ = σ²/2,
and the n − t honest shares are exactly Sk(μ) — no slack, no floor; each agency charges the
Skellam event of μ (privacy.mechanisms: its PLD built from the pmfs). Everything here takes the
noise's standard deviation σ for both noises (the Skellam's parameter is σ²/2, noise.skellam_mu).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from privacy.accounting import ADD_REMOVE, MAX_SIGMA, CalibrationError, epsilon
from privacy.mechanisms import DISCRETE_GAUSSIAN, SKELLAM, MechanismEvent
from privacy.noise import discrete_gaussian_variance, sample_discrete_gaussian, sample_skellam, skellam_mu

__all__ = ["MIN_SHARE_SIGMA", "NOISES", "Z95", "ShareDesign", "calibrate_count_sigma", "calibrate_noise_multiplier", "count_event", "half_width", "noise_variance", "sample_noise", "share_floor", "sum_tv_bound"]

NOISES = (DISCRETE_GAUSSIAN, SKELLAM)  # analytics.noise

COUNT_SENSITIVITY = 1  # one record, one cell, ±1
# Smallest share σ: at s = 2 the sum's distance from a discrete Gaussian is ~1e-16 per cell
# (sum_tv_bound), negligible against any δ; at s = 1 it is ~1e-3, not negligible.
MIN_SHARE_SIGMA = 2.0
MAX_SHARE_FLOOR = 8.0  # a floor search stops here (huge ε budgets: e^ε multiplies the slack)
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def _check_noise(noise: str) -> None:
    if noise not in NOISES:
        raise ValueError(f"unknown count noise {noise!r}: use one of {', '.join(NOISES)}")


def count_event(sigma: float, releases: int = 1, sensitivity: int = COUNT_SENSITIVITY, noise: str = DISCRETE_GAUSSIAN) -> MechanismEvent:
    """The ledger event of `releases` histograms with noise of std σ per cell (discrete Gaussian
    N_Z(0, σ²), or Skellam Sk(σ²/2)), one unit moving them by at most `sensitivity` (integer
    units: 1 for a count; QUANTA fixed-point steps for a sum, tasks.analytics; more under a
    person cap, privacy.person_histogram)."""
    _check_noise(noise)
    if noise == SKELLAM:
        return MechanismEvent(SKELLAM, skellam_mu(sigma), sensitivity, 1.0, releases)
    return MechanismEvent(DISCRETE_GAUSSIAN, sigma, sensitivity, 1.0, releases)


def noise_variance(noise: str, sigma: float) -> float:
    """Variance of one draw of `noise` at std parameter σ (Skellam: exactly 2μ = σ²)."""
    _check_noise(noise)
    return 2 * skellam_mu(sigma) if noise == SKELLAM else discrete_gaussian_variance(sigma)


def sample_noise(noise: str, sigma: float, size: int) -> np.ndarray:
    """`size` draws of `noise` at std parameter σ, from the CSPRNG (σ = 0: zeros, noise off)."""
    _check_noise(noise)
    return sample_skellam(skellam_mu(sigma), size) if noise == SKELLAM else sample_discrete_gaussian(sigma, size)


def calibrate_noise_multiplier(target_epsilon: float, delta: float, sensitivities: list[int], neighbouring: str = ADD_REMOVE, rel_tol: float = 0.002, noise: str = DISCRETE_GAUSSIAN) -> float:
    """Smallest multiplier m (to `rel_tol`) such that histograms with `noise` of std σ_i =
    m·Δ_i at integer sensitivities Δ_i spend at most `target_epsilon` at `delta` together: every
    histogram gets the same noise-to-sensitivity ratio (PLD, exact for the discrete Gaussian and
    the Skellam). All Δ_i = 1 gives `calibrate_count_sigma`'s σ."""
    if set(sensitivities) == {COUNT_SENSITIVITY}:
        return calibrate_count_sigma(target_epsilon, delta, neighbouring, rel_tol, releases=len(sensitivities), noise=noise)
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise CalibrationError(f"an ε share must be a finite number > 0, got {target_epsilon!r}")
    groups = {d: sensitivities.count(d) for d in set(sensitivities)}

    def spent(m: float) -> float:
        return epsilon([count_event(m * d, n, d, noise) for d, n in sorted(groups.items())], delta, "pld", neighbouring)

    # The discrete Gaussian at σ = m·Δ, shift Δ, is within float noise of the one at (m, 1) for m ≳ 1
    # (the Skellam close to it): start the search at the count σ and bracket it.
    guess = calibrate_count_sigma(target_epsilon, delta, neighbouring, 0.02, releases=len(sensitivities), noise=noise)
    return _smallest_noise(spent, target_epsilon, guess / 1.1, guess * 1.1, rel_tol, f"no {noise} multiplier up to {MAX_SIGMA * 100:g} spends ε ≤ {target_epsilon:g} at δ={delta:g}")


def calibrate_count_sigma(target_epsilon: float, delta: float, neighbouring: str = ADD_REMOVE, rel_tol: float = 0.002, releases: int = 1, noise: str = DISCRETE_GAUSSIAN) -> float:
    """Smallest std σ (to `rel_tol`) such that `releases` histograms with `noise` at σ spend at
    most `target_epsilon` at `delta` together (PLD, exact for the discrete Gaussian and the Skellam)."""
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise CalibrationError(f"an ε share must be a finite number > 0, got {target_epsilon!r}")

    def spent(sigma: float) -> float:
        return epsilon([count_event(sigma, releases, noise=noise)], delta, "pld", neighbouring)

    return _smallest_noise(spent, target_epsilon, 0.05, 1.0, rel_tol, f"no {noise} σ up to {MAX_SIGMA * 100:g} spends ε ≤ {target_epsilon:g} at δ={delta:g}")


def _smallest_noise(spent: Callable[[float], float], target_epsilon: float, lo: float, hi: float, rel_tol: float, too_large: str) -> float:
    """The smallest noise parameter x (to `rel_tol`) with spent(x) ≤ target (spent falls as x
    grows): bracket from [lo, hi] outwards, then bisect geometrically."""
    while spent(hi) > target_epsilon:
        lo, hi = hi, hi * 1.5
        if hi > MAX_SIGMA * 100:
            raise CalibrationError(too_large)
    while spent(lo) <= target_epsilon and lo > 0.05:
        lo, hi = lo / 1.5, lo
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


EXACT_SKELLAM_BELOW = 1000.0  # μ below which a Skellam count's half-width is its exact quantile


def half_width(variance: float, noise: str = DISCRETE_GAUSSIAN) -> float:
    """95% interval half-width of a released count whose noise has this variance. Normal
    approximation for the discrete Gaussian (its sums are within ~1e-16 of normal quantiles at
    σ ≥ 2) and for a Skellam of μ ≥ EXACT_SKELLAM_BELOW; below, the Skellam's own quantile (a
    released Skellam noise is exactly Sk(variance/2); normal is off for μ ≲ 4, e.g. at μ = 0.06
    the noise is 0 in 88% of cells): the least integer h with P(|X| ≤ h) ≥ 0.95."""
    _check_noise(noise)
    mu = variance / 2
    if noise == SKELLAM and 0 < mu < EXACT_SKELLAM_BELOW:
        from scipy.stats import skellam

        return float(skellam.ppf(0.975, mu, mu))  # P(|X| ≤ h) = 2·F(h) − 1 by symmetry
    return Z95 * math.sqrt(variance)


@dataclass(frozen=True)
class ShareDesign:
    """Federated noise shares: `agencies` agencies, up to `tolerate` of which may drop out or
    collude with the coordinator, and a target σ the released sum must keep. Discrete Gaussian
    shares keep a least σ (`floor`); Skellam shares have none (their sums are exact)."""

    agencies: int
    tolerate: int
    sigma: float
    floor: float = MIN_SHARE_SIGMA  # the least discrete Gaussian share σ (share_floor)
    noise: str = DISCRETE_GAUSSIAN

    def __post_init__(self) -> None:
        _check_noise(self.noise)
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
        """Std of each agency's share: σ/√(n − t); a discrete Gaussian's at least `floor` (σ = 0: noise off)."""
        if self.sigma == 0:
            return 0.0
        if self.noise == SKELLAM:
            return math.sqrt(2 * self.share_mu)
        return max(self.sigma / math.sqrt(self.honest), self.floor)

    @property
    def share_mu(self) -> float:
        """Skellam: μ of each agency's share, μ/(n − t) with μ = σ²/2."""
        return skellam_mu(self.sigma) / self.honest

    @property
    def guaranteed_mu(self) -> float:
        """Skellam: μ of the n − t honest shares' sum, (n − t)·μ_share, rounded down if the float
        product rounds up (the charge never exceeds the noise drawn)."""
        total = self.honest * self.share_mu
        if Fraction(total) > self.honest * Fraction(self.share_mu):
            total = math.nextafter(total, 0.0)
        return total

    @property
    def guaranteed_sigma(self) -> float:
        """Std of the noise each agency charges: √(n − t)·s (discrete Gaussian, ≥ σ), √(2μ) (Skellam)."""
        if self.noise == SKELLAM:
            return math.sqrt(2 * self.guaranteed_mu)
        return math.sqrt(self.honest) * self.share_sigma

    @property
    def floored(self) -> bool:
        """Whether the share σ was raised above σ/√(n − t) by the floor (discrete Gaussian only)."""
        return self.noise == DISCRETE_GAUSSIAN and self.sigma > 0 and self.share_sigma > self.sigma / math.sqrt(self.honest) * (1 + 1e-9)

    def event(self, sensitivity: int) -> MechanismEvent:
        """The ledger event each agency is charged for one histogram: the noise the honest sum carries."""
        if self.noise == SKELLAM:
            return MechanismEvent(SKELLAM, self.guaranteed_mu, sensitivity, 1.0, 1)
        return count_event(self.guaranteed_sigma, sensitivity=sensitivity)

    def sample_share(self, size: int) -> np.ndarray:
        """`size` draws of one agency's share, from the CSPRNG (σ = 0: zeros, noise off)."""
        if self.sigma == 0:
            return np.zeros(size, dtype=np.int64)
        if self.noise == SKELLAM:
            return sample_skellam(self.share_mu, size)
        return sample_discrete_gaussian(self.share_sigma, size)

    def released_variance(self, reporting: int) -> float:
        """Variance of the noise in a sum of `reporting` agencies' shares."""
        if self.noise == SKELLAM:
            return reporting * 2 * self.share_mu
        return reporting * discrete_gaussian_variance(self.share_sigma)

    def delta_slack(self, epsilon_: float, cells: int) -> float:
        """(1 + e^ε)·cells·τ: what the sum's distance from a discrete Gaussian adds to δ per
        histogram (Skellam: 0, its sum is exactly a Skellam)."""
        if self.noise == SKELLAM:
            return 0.0
        return delta_slack(self.share_sigma, self.honest, epsilon_, cells)
