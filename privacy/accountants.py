"""The accountants behind `privacy.accounting.epsilon`: each turns a merged history of
Poisson-subsampled Gaussian releases into an upper bound on ε at a given δ, for add/remove-one
neighbouring (the relation DP-SGD with Poisson sampling is analysed under) or, with `pld` only,
replace-one (one record's content changed, the count fixed: what holds when n is public).

- `pld`: Google's dp-accounting privacy loss distributions (an implementation independent of
  Opacus). Pessimistic discretisation only, so every figure is an upper bound; the
  discretisation interval is refined until ε stops moving (see `pld_epsilon`).
- `prv`: Opacus' PRV accountant (Gopi et al. 2021), upper end of its error bound, with the error
  bound scaled to ε (Opacus' default is 0.01 absolute, which is 3% of ε = 0.3 and 30× ε = 0.0003).
- `rdp`: Opacus' RDP accountant with a wider range of orders than its default. Simple and fast,
  loosest of the three (the RDP → (ε, δ) conversion costs a few percent to a few ×).

Heavy libraries are imported inside the functions: `peel budget show` and a ledger need only
the accountant they use, and Opacus drags in torch.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Release = tuple[float, float, int]  # (noise multiplier σ, Poisson sample rate q, steps)
History = tuple[Release, ...]  # merged: no zero-step entries, no equal (σ, q) neighbours

# Neighbouring relations: "add-remove" (one record added or removed) and "replace-one" (one
# record's content replaced by another's: a clipped gradient moves by up to 2C, n stays).
ADD_REMOVE = "add-remove"
REPLACE_ONE = "replace-one"
NEIGHBOURING = (ADD_REMOVE, REPLACE_ONE)


def check_neighbouring(neighbouring: str, accountant: str) -> str:
    """`neighbouring` if it is a relation `accountant` can account for; ValueError otherwise."""
    if neighbouring not in NEIGHBOURING:
        raise ValueError(f"unknown neighbouring relation {neighbouring!r}: use one of {', '.join(NEIGHBOURING)}")
    if neighbouring == REPLACE_ONE and accountant != "pld":
        raise ValueError(f"the {accountant} accountant only accounts for add-remove neighbours; use pld (or auto) for replace-one")
    return neighbouring

# --- PLD (dp-accounting) ------------------------------------------------------------------
# Pessimistic "connect the dots" PLDs: the ε of a composition is an upper bound at any
# discretisation interval, and the bound tightens (roughly quadratically) as the interval shrinks.
# A fixed interval cannot fit every history: at 1e-3, q=0.001, σ=5 and 10^4 steps give ε=0.125
# against a converged 0.0595 (per-step losses are smaller than the interval), while at 1e-4
# q=0.001, σ=0.5 takes 4 s. So start coarse (cheap) and refine by 4× until ε moves by less than
# 2%: over the test grid (q 0.001–0.5, σ 0.5–5, 1–10^4 steps) the value is then within 0.4% of
# the converged limit (mostly < 0.1%), and costs up to 3× less than stopping at 1%.
# Every value computed is an upper bound, so their minimum is one too.
_PLD_START_INTERVAL = 1e-2
_PLD_REFINE = 4.0
_PLD_CONVERGED = 0.02
_PLD_MIN_INTERVAL = 1e-6  # stop refining here (the value is still a valid upper bound)
# Composed PLDs of recent histories and of their prefixes, so that calibration (one prior, many
# candidate σ for the next releases) and a ledger charge (history, then history + one release)
# compose only the new release. Only histories with ε ≤ 100 are kept: a PLD's support grows with
# ε / interval, and ε beyond 100 is of no use to anyone.
_PLD_CACHE_SIZE = 12
_PLD_CACHE_MAX_EPSILON = 100.0
_pld_cache: OrderedDict[tuple[History, float, str], Any] = OrderedDict()
_pld_cache_lock = threading.Lock()  # PLDs are immutable; only the dict needs guarding


def _release_pld(release: Release, interval: float, neighbouring: str = ADD_REMOVE) -> Any:
    """PLD of one release: exactly what dp-accounting's PLDAccountant (with the matching
    NeighboringRelation) builds for SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)."""
    sigma, q, steps = release
    return _step_pld(float(sigma), float(q), interval, neighbouring).self_compose(steps)


# Room for every agency of a large federation at each interval pld_epsilon visits (3 each): a
# cache smaller than that is emptied every round, and every charge rebuilds its step PLDs
# (64 entries did that from 22 agencies on). A step PLD holds 0.1k–5k points: 1024 are < 50 MB.
@functools.lru_cache(maxsize=1024)
def _step_pld(sigma: float, q: float, interval: float, neighbouring: str = ADD_REMOVE) -> Any:
    """One Poisson-subsampled Gaussian step. Building it is most of an ε computation; an agency
    reuses the same (σ, q) every round, so it is built once (PLDs are immutable)."""
    from dp_accounting import NeighboringRelation
    from dp_accounting.pld import privacy_loss_distribution

    relation = NeighboringRelation.REPLACE_ONE if neighbouring == REPLACE_ONE else NeighboringRelation.ADD_OR_REMOVE_ONE

    return privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=sigma,
        value_discretization_interval=interval,
        sampling_prob=q,
        # dp-accounting's defaults, spelt out: these make the estimate an upper bound.
        pessimistic_estimate=True,
        use_connect_dots=True,
        neighboring_relation=relation,
    )


def _cache_get(key: tuple[History, float, str]) -> Any:
    with _pld_cache_lock:
        pld = _pld_cache.get(key)
        if pld is not None:
            _pld_cache.move_to_end(key)
        return pld


def _cache_put(key: tuple[History, float, str], pld: Any) -> None:
    with _pld_cache_lock:
        _pld_cache[key] = pld
        _pld_cache.move_to_end(key)
        while len(_pld_cache) > _PLD_CACHE_SIZE:
            _pld_cache.popitem(last=False)


def _pld_at(history: History, delta: float, interval: float, neighbouring: str = ADD_REMOVE) -> float:
    """ε of `history` with PLDs discretised at `interval` (composed in history order, as the
    PLDAccountant does)."""
    start, composed = 0, None
    for k in range(len(history), 0, -1):
        composed = _cache_get((history[:k], interval, neighbouring))
        if composed is not None:
            start = k
            break
    prefix = composed if start == len(history) - 1 else None
    for i in range(start, len(history)):
        release = _release_pld(history[i], interval, neighbouring)
        composed = release if composed is None else composed.compose(release)
        if i == len(history) - 2:
            prefix = composed
    if composed is None:
        return 0.0  # an empty history spends nothing (as the RDP accountant reports)
    eps = float(composed.get_epsilon_for_delta(delta))
    if eps <= _PLD_CACHE_MAX_EPSILON:
        if prefix is not None:
            _cache_put((history[:-1], interval, neighbouring), prefix)
        _cache_put((history, interval, neighbouring), composed)
    return eps


def pld_epsilon(history: History, delta: float, neighbouring: str = ADD_REMOVE) -> float:
    """ε (upper bound) of a merged history with dp-accounting's PLD for `neighbouring`
    ("add-remove" | "replace-one"), refining the discretisation until it converges (see the
    comment on _PLD_START_INTERVAL)."""
    check_neighbouring(neighbouring, "pld")
    best, previous, interval = math.inf, math.nan, _PLD_START_INTERVAL
    while True:
        eps = _pld_at(history, delta, interval, neighbouring)
        best = min(best, eps)
        if math.isinf(eps) and math.isinf(previous):
            return best  # mass at infinity beyond δ: not a discretisation effect
        if abs(previous - eps) <= _PLD_CONVERGED * eps:
            return best
        if interval / _PLD_REFINE < _PLD_MIN_INTERVAL:
            return best
        previous, interval = eps, interval / _PLD_REFINE


# --- PRV (Opacus) -------------------------------------------------------------------------
# Opacus' PRV reports estimate + eps_error (its error bound), so the bound is scaled to ε:
# 1% of ε, at most 0.5 (Opacus' domain-size rule is only vouched for below eps_error = 1) and at
# least what a grid of _PRV_MAX_POINTS allows (its grid spacing is eps_error / √(n·ln(12/δe)/2)
# over [−L, L]; a finer grid costs seconds and hundreds of MB).
_PRV_RELATIVE_ERROR = 0.01
_PRV_MAX_ERROR = 0.5
_PRV_MAX_POINTS = 4_000_000
# Opacus evaluates exp(t) over the whole domain [−L, L]; float64 exp overflows above 709.78 and
# Opacus then returns inf (checked: q=0.1, σ=0.5, 10^4 steps, after 66 s; q=0.5, σ=0.5, 10^4
# steps runs out of memory). Such histories have ε in the hundreds or more: return inf, a valid
# (useless) upper bound, without the wait.
_PRV_MAX_DOMAIN = 700.0


def prv_epsilon(history: History, delta: float, neighbouring: str = ADD_REMOVE) -> float:
    """ε (upper end of PRV's error bound) of a merged history with Opacus' PRV accountant
    (add/remove neighbours only)."""
    check_neighbouring(neighbouring, "prv")
    if not history:
        return 0.0  # nothing spent (Opacus' domain-size search fails on no releases)
    from opacus.accountants import PRVAccountant
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV, compute_safe_domain_size

    delta_error = delta / 1000  # Opacus' default
    steps = [s for _, _, s in history]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # RDP "optimal order" hints inside Opacus
        half_width = compute_safe_domain_size(
            [PoissonSubsampledGaussianPRV(q, sigma) for sigma, q, _ in history],
            steps,
            eps_error=_PRV_MAX_ERROR,
            delta_error=delta_error,
        )
    if half_width > _PRV_MAX_DOMAIN:
        return math.inf
    spread = math.sqrt(sum(steps) * math.log(12 / delta_error) / 2)
    floor = 2 * float(half_width) * spread / _PRV_MAX_POINTS

    def run(eps_error: float) -> float:
        acc = PRVAccountant()
        acc.history = list(history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow hints in the far tails; the bound holds
            return float(acc.get_epsilon(delta, eps_error=eps_error, delta_error=delta_error))

    def error_for(scale: float) -> float:
        return min(_PRV_MAX_ERROR, max(floor, _PRV_RELATIVE_ERROR * scale))

    # First pass with the error scaled to RDP's ε (≥ the true ε: coarser, cheaper), then, if that
    # error is large against the ε found, a second pass scaled to it.
    first_error = error_for(rdp_epsilon(history, delta))
    upper = run(first_error)
    second_error = error_for(upper - first_error)
    if second_error < first_error / 1.5:
        upper = min(upper, run(second_error))
    return upper


# --- RDP (Opacus) -------------------------------------------------------------------------
# Opacus' default orders stop at 63; small ε (large σ, small q) wants higher ones (q=0.001, σ=5,
# one step: 0.103 with the defaults, 0.0149 with these). More orders can only lower the minimum,
# and every order is valid. Integer orders are cheap; fractional ones below 1.1 would help only
# ε in the thousands and cost 0.6 s at q=0.5, so they are left out.
_RDP_ORDERS = (
    [1 + x / 10 for x in range(1, 100)]
    + list(range(12, 64))
    + list(range(64, 256, 8))
    + [256, 320, 384, 448, 512, 768, 1024]
)


def rdp_epsilon(history: History, delta: float, neighbouring: str = ADD_REMOVE) -> float:
    """ε of a merged history with Opacus' RDP accountant (orders up to 1024; add/remove
    neighbours only)."""
    check_neighbouring(neighbouring, "rdp")
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "optimal order is the largest alpha"
        return float(acc.get_epsilon(delta=delta, alphas=_RDP_ORDERS))


# A quick RDP bound for starting σ searches (privacy.accounting.calibrate_noise), never reported:
# integer orders only, ~5 ms instead of ~25–80 ms; a valid bound, a few 0.1% looser.
_RDP_QUICK_ORDERS = [*range(2, 65), 80, 96, 128, 192, 256, 512, 1024]


def rdp_epsilon_quick(history: History, delta: float) -> float:
    """ε of a merged history with Opacus' RDP at integer orders (see _RDP_QUICK_ORDERS)."""
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta=delta, alphas=_RDP_QUICK_ORDERS))


# --- registry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Accountant:
    """A named accountant: `compute(merged_history, delta[, neighbouring])` → ε upper bound."""

    name: str
    summary: str
    compute: Callable[..., float]


ACCOUNTANTS: dict[str, Accountant] = {
    a.name: a
    for a in (
        Accountant("pld", "privacy loss distributions (dp-accounting), pessimistic", pld_epsilon),
        Accountant("prv", "privacy random variables (Opacus), upper end of its error bound", prv_epsilon),
        Accountant("rdp", "Rényi DP (Opacus); loosest", rdp_epsilon),
    )
}

# "auto" is the tightest accountant that is correct for Poisson-subsampled Gaussian steps: PLD.
# PLD and PRV are both numerically tight (RDP pays for its conversion to (ε, δ)), but PLD's
# pessimistic discretisation is an upper bound by construction at every step and we refine it to
# convergence, while PRV adds an error bound to an estimate, whose domain rule Opacus itself marks
# as unproven for large errors and which cannot represent ε above ~700.
AUTO = "pld"
