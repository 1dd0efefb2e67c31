"""Release events beyond DP-SGD: what a ledger charges for a noised count or statistic, and how
those events compose with Poisson-subsampled Gaussian releases.

A release is either the `(σ, q, steps)` tuple DP-SGD has always charged (σ a noise multiplier:
noise std over the clipping norm) or a `MechanismEvent` naming its mechanism, its noise and the
L1/L2 sensitivity it was calibrated to:

- "subsampled-gaussian": the tuple case, noise = σ multiplier, sensitivity 1.
- "gaussian": Gaussian noise of std `noise` on a statistic of L2 sensitivity Δ. Accounted as
  the multiplier σ/Δ, i.e. exactly the tuple case (σ/Δ, q, steps).
- "laplace": Laplace noise of scale b = `noise` on a statistic of L1 sensitivity Δ; dp-accounting's
  LaplaceDpEvent(b/Δ) (Poisson-subsampled when q < 1).
- "discrete-gaussian": discrete Gaussian N_Z(0, σ²) with σ = `noise` on an integer statistic of
  integer sensitivity Δ (Canonne, Kamath, Steinke 2020). dp-accounting 0.6 has no DpEvent for it,
  but it has its exact privacy loss (`from_discrete_gaussian_mechanism`): that PLD is composed
  directly, not the continuous Gaussian's (which is neither needed nor, for (ε, δ), a proven
  upper bound for it).
- "skellam": symmetric Skellam Sk(μ) = Pois(μ) − Pois(μ) with μ = `noise` (variance 2μ) on an
  integer statistic of integer sensitivity Δ (Agarwal, Kairouz, Liu 2021), unsampled only. Its PLD
  is built from the two probability mass functions themselves (`skellam_pld`): Sk(μ) and Sk(μ)
  shifted by Δ, log-pmfs over [−K, K + Δ] (P[x] = e^{−2μ}·I_|x|(2μ), scipy's Bessel `ive`), and the mass of Sk(μ) outside that support
  (at most 2·P(X ≥ K), bounded by the exact Chernoff bound of the Skellam's MGF, K chosen so that is
  ≤ 1e-20) counted as infinite privacy loss: pessimistic. Sk(μ) is symmetric, so one PLD serves both
  directions of add/remove. Sk(μ) is log-concave (a convolution of log-concave pmfs), so its shifts
  have monotone likelihood ratios and the optimal test between Sk(μ) and its shift by d ≤ Δ is a
  threshold test whose power grows with d: the shift by Δ dominates every smaller one (and
  compositions keep that order), so a statistic one unit moves by at most Δ in one coordinate is
  charged exactly as the shift by Δ.

Only PLD composes the new kinds; PRV and RDP (Opacus) model subsampled Gaussians only and refuse
a history holding another kind (ValueError naming it). Under replace-one neighbours the stated
sensitivity must be the replace-one sensitivity, and only unsampled (q = 1) Laplace and discrete
Gaussian releases are accounted (dp-accounting models their subsampling for add/remove only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from privacy.accountants import ADD_REMOVE, REPLACE_ONE, Release, check_neighbouring

__all__ = ["KINDS", "SKELLAM", "Entry", "MechanismEvent", "as_event", "dp_event", "is_tuple_case", "skellam_pld", "to_release"]

SUBSAMPLED_GAUSSIAN = "subsampled-gaussian"
GAUSSIAN = "gaussian"
LAPLACE = "laplace"
DISCRETE_GAUSSIAN = "discrete-gaussian"
SKELLAM = "skellam"
KINDS = (SUBSAMPLED_GAUSSIAN, GAUSSIAN, LAPLACE, DISCRETE_GAUSSIAN, SKELLAM)
INTEGER_KINDS = (DISCRETE_GAUSSIAN, SKELLAM)  # integer noise on integer statistics: whole-number Δ
SKELLAM_TAIL_MASS = 1e-20  # at most this much of Sk(μ) lies outside the support its PLD is built over


@dataclass(frozen=True)
class MechanismEvent:
    """One release: `steps` self-composed applications of mechanism `kind` with noise parameter
    `noise` (σ multiplier, Gaussian std, Laplace scale b, discrete-Gaussian σ, or Skellam μ) calibrated to
    `sensitivity`, each on a Poisson sample at rate `sample_rate` (1: the whole data)."""

    kind: str
    noise: float
    sensitivity: float = 1.0
    sample_rate: float = 1.0
    steps: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown mechanism kind {self.kind!r}: use one of {', '.join(KINDS)}")
        noise, sens, q = float(self.noise), float(self.sensitivity), float(self.sample_rate)
        if not (noise >= 0 and math.isfinite(noise)):
            raise ValueError(f"{self.kind} noise must be a finite number ≥ 0, got {self.noise!r}")
        if not (sens > 0 and math.isfinite(sens)):
            raise ValueError(f"{self.kind} sensitivity must be a finite number > 0, got {self.sensitivity!r}")
        if self.kind == SUBSAMPLED_GAUSSIAN and sens != 1.0:
            raise ValueError(f"a subsampled-gaussian noise is a multiplier (sensitivity 1), got sensitivity {sens!r}")
        if self.kind in INTEGER_KINDS and sens != int(sens):
            raise ValueError(f"{self.kind} sensitivity must be a whole number, got {sens!r}")
        if not 0 < q <= 1:
            raise ValueError(f"{self.kind} sample rate must be in (0, 1], got {self.sample_rate!r}")
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(f"{self.kind} steps must be a whole number ≥ 0, got {self.steps!r}")
        if self.kind == SKELLAM and q != 1.0:
            raise ValueError(f"a skellam release is accounted unsampled only (sample rate 1), got {self.sample_rate!r}")
        object.__setattr__(self, "noise", noise)
        object.__setattr__(self, "sensitivity", sens)
        object.__setattr__(self, "sample_rate", q)
        object.__setattr__(self, "steps", int(self.steps))


Entry = Release | MechanismEvent  # what a history holds


def as_event(entry: Entry | Sequence[Any]) -> MechanismEvent:
    """`entry` as a MechanismEvent (a (σ, q, steps) tuple is the subsampled-Gaussian case)."""
    if isinstance(entry, MechanismEvent):
        return entry
    if len(entry) != 3:
        raise ValueError(f"a release is (σ, sample rate, steps) or a MechanismEvent, got {entry!r}")
    return MechanismEvent(SUBSAMPLED_GAUSSIAN, entry[0], 1.0, entry[1], entry[2])


def is_tuple_case(event: MechanismEvent) -> bool:
    """Whether `event` is accounted exactly as a (σ, q, steps) subsampled-Gaussian release."""
    return event.kind in (SUBSAMPLED_GAUSSIAN, GAUSSIAN)


def to_release(event: MechanismEvent) -> Release:
    """The (σ multiplier, q, steps) tuple of a (subsampled-)Gaussian event: std σ at L2
    sensitivity Δ is multiplier σ/Δ (the privacy loss depends on their ratio only)."""
    if not is_tuple_case(event):
        raise ValueError(f"a {event.kind} release has no (σ, q, steps) form")
    return (event.noise / event.sensitivity, event.sample_rate, event.steps)


def dp_event(event: Entry) -> Any:
    """The dp-accounting DpEvent of one release (for RDP and independent cross-checks);
    UnsupportedDpEvent for the discrete Gaussian and Skellam, which dp-accounting 0.6 has no event for."""
    from dp_accounting import dp_event as ev

    e = as_event(event)
    inner: Any
    if is_tuple_case(e):
        inner = ev.GaussianDpEvent(e.noise / e.sensitivity)
    elif e.kind == LAPLACE:
        inner = ev.LaplaceDpEvent(e.noise / e.sensitivity)
    else:
        return ev.UnsupportedDpEvent()
    if e.sample_rate < 1:
        inner = ev.PoissonSampledDpEvent(e.sample_rate, inner)
    return ev.SelfComposedDpEvent(inner, e.steps)


def check_accountable(events: Sequence[MechanismEvent], accountant: str, neighbouring: str) -> None:
    """ValueError if `accountant` cannot account for every event under `neighbouring`."""
    check_neighbouring(neighbouring, accountant)
    for e in events:
        if is_tuple_case(e):
            continue
        if accountant != "pld":
            raise ValueError(f"the {accountant} accountant accounts only for Gaussian releases, not a {e.kind} release: use pld (or auto)")
        if neighbouring == REPLACE_ONE and e.sample_rate < 1:
            raise ValueError(f"a Poisson-subsampled {e.kind} release is accounted for add-remove neighbours only (sample rate {e.sample_rate:g})")


def event_pld(event: MechanismEvent, interval: float, neighbouring: str = ADD_REMOVE) -> Any:
    """Pessimistic PLD of a Laplace, discrete-Gaussian or Skellam event at discretisation `interval`."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    if event.kind == LAPLACE:
        one = pld.from_laplace_mechanism(
            parameter=event.noise / event.sensitivity,
            value_discretization_interval=interval,
            sampling_prob=event.sample_rate,
            pessimistic_estimate=True,
            use_connect_dots=True,
        )
    elif event.kind == DISCRETE_GAUSSIAN:
        one = pld.from_discrete_gaussian_mechanism(
            sigma=event.noise,
            sensitivity=int(event.sensitivity),
            value_discretization_interval=interval,
            sampling_prob=event.sample_rate,
            pessimistic_estimate=True,
            use_connect_dots=True,
        )
    elif event.kind == SKELLAM:
        one = skellam_pld(event.noise, int(event.sensitivity), interval)
    else:
        raise ValueError(f"event_pld is for laplace, discrete-gaussian and skellam releases, got {event.kind}")
    return one.self_compose(event.steps)


def skellam_tail_bound(mu: float, k: int) -> float:
    """An upper bound on P(X ≥ k) for X ~ Sk(μ), k > 0: Chernoff with the exact MGF
    E e^{tX} = exp(μ(e^t + e^{−t} − 2)) at its best t = asinh(k / 2μ)."""
    t = math.asinh(k / (2 * mu))
    return math.exp(-k * t + 2 * mu * (math.cosh(t) - 1))


def skellam_support(mu: float, sensitivity: int) -> int:
    """K: the PLD's support is [−K, K + Δ]; the mass of Sk(μ) outside it is ≤ 2·P(X ≥ K) ≤ SKELLAM_TAIL_MASS."""
    k = max(1, math.ceil(8 * math.sqrt(2 * mu)) + 10)
    while 2 * skellam_tail_bound(mu, k) > SKELLAM_TAIL_MASS:
        k = math.ceil(k * 1.1) + 1
    return k


@lru_cache(maxsize=256)
def _skellam_log_pmfs(mu: float, sensitivity: int) -> tuple[dict[Any, float], dict[Any, float]]:
    """(lower, upper) log-pmfs of the Skellam PLD: Sk(μ) shifted by Δ, and Sk(μ) itself plus one
    outcome only it holds ("outside") carrying the mass beyond the support, so dp-accounting counts
    it as infinite privacy loss (from_two_probability_mass_functions ignores outcomes absent from
    both maps: without it that mass would be dropped, an optimistic error)."""
    from scipy.special import ive

    k = skellam_support(mu, sensitivity)
    x = np.arange(-k, k + sensitivity + 1)
    with np.errstate(divide="ignore"):  # an underflowed mass (< 1e-308) is log 0: dropped (counted in "outside")
        # P[Sk(μ) = x] = e^{−2μ}·I_|x|(2μ) = ive(|x|, 2μ) (scipy's exponentially scaled Bessel I)
        upper_log = np.log(ive(np.abs(x), 2 * mu))
        lower_log = np.log(ive(np.abs(x - sensitivity), 2 * mu))
    outside = max(2 * skellam_tail_bound(mu, k), 1.0 - math.fsum(np.exp(upper_log)))
    upper: dict[Any, float] = {int(v): float(p) for v, p in zip(x, upper_log, strict=True)}
    upper["outside"] = math.log(outside)
    lower: dict[Any, float] = {int(v): float(p) for v, p in zip(x, lower_log, strict=True)}
    return lower, upper


def skellam_pld(mu: float, sensitivity: int, interval: float) -> Any:
    """Pessimistic PLD of one Sk(μ) release at integer sensitivity Δ (module docstring)."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    lower, upper = _skellam_log_pmfs(float(mu), int(sensitivity))
    return pld.from_two_probability_mass_functions(lower, upper, pessimistic_estimate=True, value_discretization_interval=interval, symmetric=True)


def mixed_pld_epsilon(history: Sequence[Release | MechanismEvent], delta: float, neighbouring: str = ADD_REMOVE) -> float:
    """ε (upper bound) of a merged history holding Laplace, discrete-Gaussian or Skellam events beside
    (σ, q, steps) releases, composed in order with dp-accounting PLDs, refining the
    discretisation as `privacy.accountants.pld_epsilon` does (same start, step and stop)."""
    from privacy import accountants as acc

    best, previous, interval = math.inf, math.nan, acc._PLD_START_INTERVAL
    while True:
        composed: Any = None
        for item in history:
            one = event_pld(item, interval, neighbouring) if isinstance(item, MechanismEvent) else acc._release_pld(item, interval, neighbouring)
            composed = one if composed is None else composed.compose(one)
        eps = float(composed.get_epsilon_for_delta(delta))
        best = min(best, eps)
        if math.isinf(eps) and math.isinf(previous):
            return best
        if abs(previous - eps) <= acc._PLD_CONVERGED * eps or interval / acc._PLD_REFINE < acc._PLD_MIN_INTERVAL:
            return best
        previous, interval = eps, interval / acc._PLD_REFINE


def entry_of(sigma: float, sample_rate: float, steps: int, kind: str | None = None, sensitivity: float | None = None) -> Entry:
    """The history entry a stored release row stands for: a (σ, q, steps) tuple when it has no
    kind (every row from before kinds were stored), a MechanismEvent otherwise."""
    if kind is None:
        return (float(sigma), float(sample_rate), int(steps))
    return MechanismEvent(kind, sigma, 1.0 if sensitivity is None else sensitivity, sample_rate, steps)


def stored_form(entry: Entry | Sequence[Any]) -> tuple[float, float, int, str | None, float | None]:
    """(σ or noise, q, steps, kind, sensitivity) as a ledger row stores `entry`: kind and
    sensitivity NULL for the subsampled-Gaussian case, so such rows read and hash as before."""
    e = as_event(entry)
    if e.kind == SUBSAMPLED_GAUSSIAN:
        return (e.noise, e.sample_rate, e.steps, None, None)
    return (e.noise, e.sample_rate, e.steps, e.kind, e.sensitivity)
