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

Only PLD composes the new kinds; PRV and RDP (Opacus) model subsampled Gaussians only and refuse
a history holding another kind (ValueError naming it). Under replace-one neighbours the stated
sensitivity must be the replace-one sensitivity, and only unsampled (q = 1) Laplace and discrete
Gaussian releases are accounted (dp-accounting models their subsampling for add/remove only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from privacy.accountants import ADD_REMOVE, REPLACE_ONE, Release, check_neighbouring

__all__ = ["KINDS", "Entry", "MechanismEvent", "as_event", "dp_event", "is_tuple_case", "to_release"]

SUBSAMPLED_GAUSSIAN = "subsampled-gaussian"
GAUSSIAN = "gaussian"
LAPLACE = "laplace"
DISCRETE_GAUSSIAN = "discrete-gaussian"
KINDS = (SUBSAMPLED_GAUSSIAN, GAUSSIAN, LAPLACE, DISCRETE_GAUSSIAN)


@dataclass(frozen=True)
class MechanismEvent:
    """One release: `steps` self-composed applications of mechanism `kind` with noise parameter
    `noise` (σ multiplier, Gaussian std, Laplace scale b, or discrete-Gaussian σ) calibrated to
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
        if self.kind == DISCRETE_GAUSSIAN and sens != int(sens):
            raise ValueError(f"discrete-gaussian sensitivity must be a whole number, got {sens!r}")
        if not 0 < q <= 1:
            raise ValueError(f"{self.kind} sample rate must be in (0, 1], got {self.sample_rate!r}")
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(f"{self.kind} steps must be a whole number ≥ 0, got {self.steps!r}")
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
    UnsupportedDpEvent for the discrete Gaussian, which dp-accounting 0.6 has no event for."""
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
    """Pessimistic PLD of a Laplace or discrete-Gaussian event at discretisation `interval`."""
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
    else:
        raise ValueError(f"event_pld is for laplace and discrete-gaussian releases, got {event.kind}")
    return one.self_compose(event.steps)


def mixed_pld_epsilon(history: Sequence[Release | MechanismEvent], delta: float, neighbouring: str = ADD_REMOVE) -> float:
    """ε (upper bound) of a merged history holding Laplace or discrete-Gaussian events beside
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
