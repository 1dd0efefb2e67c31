"""Privacy accounting for DP-SGD with Poisson sampling: ε from a history of releases, and σ
calibration.

A history is a list of `(noise_multiplier, sample_rate, steps)` entries, one per release, in the
order they happened. It is the only state an agency needs to know what it has spent, so it is
what the agency persists (its ledger, `privacy/ledger.py`). The accountants themselves live in
`privacy/accountants.py`; this module is the front door.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from privacy.accountants import ACCOUNTANTS, ADD_REMOVE, AUTO, NEIGHBOURING, REPLACE_ONE, Release, check_neighbouring, rdp_epsilon_quick
from privacy.mechanisms import Entry, MechanismEvent, check_accountable, is_tuple_case, mixed_pld_epsilon, to_release

__all__ = [
    "ACCOUNTANT_CHOICES",
    "ADD_REMOVE",
    "DEFAULT_ACCOUNTANT",
    "Entry",
    "MAX_SIGMA",
    "NEIGHBOURING",
    "CalibrationError",
    "MechanismEvent",
    "REPLACE_ONE",
    "Release",
    "calibrate_noise",
    "check_release",
    "epsilon",
    "merge_entries",
    "merge_history",
    "resolve_accountant",
]

DEFAULT_ACCOUNTANT = "auto"
ACCOUNTANT_CHOICES = ("auto", *ACCOUNTANTS)

# Calibration searches σ in [MIN_SIGMA, MAX_SIGMA]. Below 0.1 every useful history has ε in the
# thousands (and the PLD grows huge); a plan needing σ above 1000 is noise, not training.
MIN_SIGMA = 0.1
MAX_SIGMA = 1000.0


class CalibrationError(ValueError):
    """No σ in the searched range meets the target (the message says why)."""


def resolve_accountant(name: str) -> str:
    """The registered accountant `name` stands for ("auto" → the tightest correct one, PLD)."""
    if name == "auto":
        return AUTO
    if name not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {name!r}: use one of {', '.join(ACCOUNTANT_CHOICES)}")
    return name


def check_release(release: Sequence[Any]) -> Release:
    """`release` as (float σ, float q, int steps); ValueError if it is not a valid release."""
    if len(release) != 3:
        raise ValueError(f"a release is (σ, sample rate, steps), got {release!r}")
    sigma, q, steps = float(release[0]), float(release[1]), release[2]
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"noise multiplier must be a finite number ≥ 0, got {sigma!r}")
    if not 0 < q <= 1:
        raise ValueError(f"sample rate must be in (0, 1], got {q!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a whole number ≥ 0, got {steps!r}")
    return sigma, q, int(steps)


def merge_history(history: Sequence[Release]) -> list[Release]:
    """Merge neighbouring releases with the same (σ, q): composition only counts steps, and the
    merged form makes ε independent of how the same steps were split into rounds."""
    merged: list[Release] = []
    for release in history:
        sigma, q, steps = check_release(release)
        if steps == 0:
            continue
        if merged and merged[-1][0] == sigma and merged[-1][1] == q:
            merged[-1] = (sigma, q, merged[-1][2] + steps)
        else:
            merged.append((sigma, q, steps))
    return merged


# ε of recent merged histories (a pure function of them): the same history charged again — e.g.
# by the fedavg-dp and fedavg-dp-secagg cells of a sweep over the same data, whose agencies plan
# the same σ and release the same steps round by round — is computed once per process.
_EPSILONS_SIZE = 4096
_epsilons: OrderedDict[tuple[Any, ...], float] = OrderedDict()
_epsilons_lock = threading.Lock()


def merge_entries(history: Sequence[Entry]) -> list[Entry]:
    """`history` with Gaussian events as their (σ, q, steps) tuples, neighbouring equal-(σ, q)
    tuples merged (see merge_history) and zero-step entries dropped; other events kept in place."""
    merged: list[Entry] = []
    for entry in history:
        if isinstance(entry, MechanismEvent):
            if entry.steps == 0:
                continue
            if not is_tuple_case(entry):
                merged.append(entry)
                continue
            entry = to_release(entry)
        sigma, q, steps = check_release(entry)
        last = merged[-1] if merged else None
        if steps == 0:
            continue
        if isinstance(last, tuple) and last[0] == sigma and last[1] == q:
            merged[-1] = (sigma, q, last[2] + steps)
        else:
            merged.append((sigma, q, steps))
    return merged


def epsilon(history: Sequence[Entry], delta: float, accountant: str = DEFAULT_ACCOUNTANT, neighbouring: str = ADD_REMOVE) -> float:
    """Cumulative ε at `delta` of every release in `history` (0 for an empty history), an upper
    bound from the named accountant, for `neighbouring` records: "add-remove" (one record added
    or removed) or "replace-one" (one record's content replaced; PLD only, ValueError otherwise).

    A release is a (σ, q, steps) tuple or a MechanismEvent (privacy/mechanisms.py); a history
    holding Laplace or discrete-Gaussian events is composed with PLD only (ValueError for PRV/RDP)."""
    name = resolve_accountant(accountant)
    check_neighbouring(neighbouring, name)
    if not 0 < delta < 1:
        raise ValueError(f"δ must be in (0, 1), got {delta!r}")
    merged = merge_entries(history)
    if not merged:
        return 0.0
    events = [e for e in merged if isinstance(e, MechanismEvent)]
    check_accountable(events, name, neighbouring)
    if any((e.noise if isinstance(e, MechanismEvent) else e[0]) == 0 for e in merged):
        return math.inf  # a noiseless release has no finite guarantee
    key = (name, tuple(merged), float(delta), neighbouring)
    with _epsilons_lock:
        if key in _epsilons:
            _epsilons.move_to_end(key)
            return _epsilons[key]
    if events:
        eps = mixed_pld_epsilon(key[1], delta, neighbouring)
    elif neighbouring == ADD_REMOVE:
        eps = ACCOUNTANTS[name].compute(key[1], delta)
    else:
        eps = ACCOUNTANTS[name].compute(key[1], delta, neighbouring)
    with _epsilons_lock:
        _epsilons[key] = eps
        while len(_epsilons) > _EPSILONS_SIZE:
            _epsilons.popitem(last=False)
    return eps


# Calibration results, keyed by every argument (calibration is a pure function of them): the
# same agency planning the same releases from the same prior — e.g. fedavg-dp and
# fedavg-dp-secagg cells of a sweep over the same data — is calibrated once per process.
_CALIBRATIONS_SIZE = 1024
_calibrations: OrderedDict[tuple[Any, ...], float] = OrderedDict()
_calibrations_lock = threading.Lock()


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = DEFAULT_ACCOUNTANT,
    *,
    prior: Sequence[Entry] = (),
    releases: int = 1,
    rel_tol: float = 0.005,
    neighbouring: str = ADD_REMOVE,
) -> float:
    """Smallest σ (to `rel_tol` of ε) such that `prior` followed by `releases`
    releases of `steps` steps at `sample_rate` and σ spend at most `target_epsilon` at `delta`.

    Raises CalibrationError if even MAX_SIGMA spends more. The caller checks first that `prior`
    alone is below the target (then ε falls towards it as σ grows).

    The search for PLD and PRV starts from the σ that a quick RDP bound (integer orders only:
    ~5 ms an evaluation) needs, in steps of 10%: RDP is looser, so that σ is a few percent
    above theirs and the search spends its few PLD/PRV evaluations near the answer, where they
    are cheap (a small σ has a wide PLD). Every σ the search accepts is checked with the named
    accountant, so the result meets the target with that accountant whatever the start.
    """
    name = resolve_accountant(accountant)
    if releases < 1 or steps < 1:
        raise ValueError(f"need at least one release of at least one step, got {releases} × {steps}")
    prior = [r if isinstance(r, MechanismEvent) else check_release(r) for r in prior]
    check_neighbouring(neighbouring, name)
    key = (float(target_epsilon), float(delta), float(sample_rate), int(steps), name, tuple(prior), int(releases), float(rel_tol), neighbouring)
    with _calibrations_lock:
        if key in _calibrations:
            _calibrations.move_to_end(key)
            return _calibrations[key]
    sigma = _calibrate(target_epsilon, delta, sample_rate, steps, name, prior, releases, rel_tol, neighbouring)
    with _calibrations_lock:
        _calibrations[key] = sigma
        while len(_calibrations) > _CALIBRATIONS_SIZE:
            _calibrations.popitem(last=False)
    return sigma


def _calibrate(target_epsilon: float, delta: float, sample_rate: float, steps: int, name: str, prior: list[Entry], releases: int, rel_tol: float, neighbouring: str = ADD_REMOVE) -> float:
    def history(sigma: float) -> list[Entry]:
        return [*prior, *[(sigma, sample_rate, steps)] * releases]

    start, factor = 1.0, 2.0
    # The quick RDP start bounds add/remove-one only; replace-one searches from σ = 1.
    # It models subsampled Gaussians only: a prior holding other kinds (Laplace, ...) searches from σ = 1.
    tuples = [r for r in prior if isinstance(r, tuple)]
    if name != "rdp" and neighbouring == ADD_REMOVE and len(tuples) == len(prior) and not any(r[0] == 0 for r in tuples):
        try:
            start = _search(lambda sigma: rdp_epsilon_quick(tuple(merge_history(tuples + [(sigma, sample_rate, steps)] * releases)), delta), target_epsilon, delta, 1.0, 2.0, 0.02)
            factor = 1.1
        except CalibrationError:
            pass  # the quick bound finds no σ up to MAX_SIGMA; the tighter accountant may: search from 1
    return _search(lambda sigma: epsilon(history(sigma), delta, name, neighbouring), target_epsilon, delta, start, factor, rel_tol)


def _search(spent: Callable[[float], float], target_epsilon: float, delta: float, start: float, factor: float, rel_tol: float) -> float:
    """Smallest σ with spent(σ) ≤ target (to rel_tol of ε), ε falling as σ grows: bracket from
    `start` in steps of `factor` (squared after each step that does not bracket, up to 2), then
    shrink the bracket."""
    # Bracket: lo infeasible (ε > target), hi feasible, stepping by `factor` from `start`.
    lo, hi = start, start
    eps_hi = spent(hi)
    eps_lo = math.inf
    if eps_hi <= target_epsilon:
        while True:
            if lo <= MIN_SIGMA:
                return hi  # meets the target with the least noise searched
            lo = max(MIN_SIGMA, lo / factor)
            eps_lo = spent(lo)
            if eps_lo > target_epsilon:
                break
            hi, eps_hi = lo, eps_lo
            factor = min(factor * factor, 2.0)  # a start far off (RDP much looser): widen the steps
    else:
        while eps_hi > target_epsilon:
            if hi >= MAX_SIGMA:
                raise CalibrationError(
                    f"even σ = {MAX_SIGMA:g} spends ε {eps_hi:.4g} > {target_epsilon:g} at δ={delta:g}"
                )
            lo, eps_lo = hi, eps_hi
            hi = min(MAX_SIGMA, hi * factor)
            eps_hi = spent(hi)
            factor = min(factor * factor, 2.0)
    # Shrink the bracket until the feasible end spends within rel_tol of the target: regula falsi
    # on log ε against log σ (nearly a straight line, so two or three steps usually do), aimed at
    # the middle of the accepted window, kept 5% inside the bracket and alternated with plain
    # bisection so that it cannot stall at one end.
    goal = math.log(target_epsilon * (1 - rel_tol / 2))
    step = 0
    while eps_hi < target_epsilon * (1 - rel_tol) and hi / lo > 1 + 1e-6:
        x_lo, x_hi = math.log(lo), math.log(hi)
        if step % 3 == 2 or not math.isfinite(eps_lo) or eps_hi <= 0:
            x = (x_lo + x_hi) / 2
        else:
            y_lo, y_hi = math.log(eps_lo) - goal, math.log(eps_hi) - goal
            x = x_hi + (x_lo - x_hi) * y_hi / (y_hi - y_lo)
            margin = 0.05 * (x_hi - x_lo)
            x = min(max(x, x_lo + margin), x_hi - margin)
        mid = math.exp(x)
        eps_mid = spent(mid)
        if eps_mid <= target_epsilon:
            hi, eps_hi = mid, eps_mid
        else:
            lo, eps_lo = mid, eps_mid
        step += 1
    return hi
