"""ε for a unit that changes several training examples at once: one incident record of the
hotspot task, whose features (lagged counts, neighbours' counts, crime mix) and labels are
counts of the agency's records, so one incident changes the content of up to g area-month
examples (`tasks.hotspot.record_influence`, measured per agency as `split.record_influence`).

The example set is fixed (every area-month of the public areas table and period), so the
relation between two incident datasets that differ by one incident added or removed is: the
same examples, up to g of them with different content. `incident_epsilon` accounts for that
relation directly (see its docstring for why the bound holds); the per-example figures stay
what DP-SGD is calibrated for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from privacy.accounting import ADD_REMOVE, DEFAULT_ACCOUNTANT, REPLACE_ONE, Entry, MechanismEvent, Release, check_release, epsilon, resolve_accountant
from privacy.mechanisms import is_tuple_case, to_release

__all__ = ["UnitEpsilon", "group_history", "incident_epsilon"]

INCIDENT_UNIT = "one incident record"


@dataclass(frozen=True)
class UnitEpsilon:
    """An (ε, δ) with what it protects: `unit` under `neighbouring` (two datasets that differ by
    one `unit` added or removed), which changes the content of at most `group_size` training
    examples of a fixed example set (`example_neighbouring`); `method` names the bound."""

    epsilon: float
    delta: float
    unit: str
    neighbouring: str
    group_size: int
    example_neighbouring: str
    method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_history(history: Sequence[Entry], g: int) -> list[Release]:
    """The releases whose replace-one ε bounds a change of up to `g` examples' content:
    each (σ, q, steps) becomes (σ/g, 1 − (1 − q)^g, steps). Only (subsampled-)Gaussian
    releases: the argument below is for them (ValueError for another kind)."""
    if isinstance(g, bool) or int(g) != g or g < 1:
        raise ValueError(f"group size g must be a whole number ≥ 1, got {g!r}")
    g = int(g)
    out = []
    for release in history:
        if isinstance(release, MechanismEvent):
            if not is_tuple_case(release):
                raise ValueError(f"incident ε is derived for Gaussian releases only, not a {release.kind} release")
            release = to_release(release)
        sigma, q, steps = check_release(release)
        out.append((sigma / g, -math.expm1(g * math.log1p(-q)) if q < 1 else 1.0, steps))
    return out


def incident_epsilon(history: Sequence[Entry], g: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT) -> UnitEpsilon:
    """(ε, δ) per incident record for a DP-SGD `history` of (σ, q, steps) releases over a fixed
    example set in which one incident changes the content of at most `g` examples.

    Why this is an upper bound. Take one step: every example is in the batch independently with
    probability q, the step releases Σ_batch clip_C(gradient) + N(0, σ²C²I). Two incident
    datasets differ in a set G of at most g examples. Condition on which examples outside G are
    sampled and on the released past (adaptive composition): their gradients are the same on
    both sides, so they shift both outputs equally, and a common shift or mixture cannot increase
    the hockey-stick divergence. What remains are P = E_T N(a_T, s²I) and Q = E_T N(b_T, s²I)
    with s = σC, T ⊆ G the sampled members of G, a_T, b_T their clipped gradient sums on each
    side, so ‖a_∅‖ = ‖b_∅‖ = 0 and ‖a_T‖, ‖b_T‖ ≤ |T|·C ≤ gC. With q_g = 1 − (1 − q)^g =
    P(T ≠ ∅), P = E_{T|T≠∅} [(1 − q_g)N(0) + q_g N(a_T)] and Q likewise with b_T, both under the
    same law of T. The hockey-stick divergence is jointly convex, so H_α(P‖Q) ≤
    sup_{‖u‖,‖v‖≤gC} H_α((1 − q_g)N(0) + q_g N(u) ‖ (1 − q_g)N(0) + q_g N(v)) for every α:
    the step is dominated by one Poisson-sampled Gaussian step at rate q_g whose one element is
    replaced (replace-one), with sensitivity gC, i.e. noise multiplier σ/g — the pair
    dp-accounting's PLD builds for REPLACE_ONE. Dominating pairs compose adaptively (Zhu, Dong &
    Wang 2022), so ε of `group_history(history, g)` under replace-one bounds ε per incident
    record. g = 1 is exactly the per-example replace-one ε. The bound gives up the fact that
    usually only one member of G is sampled (it charges gC whenever any is), so it is loose for
    small q; it is not loose by assumption about the data.
    """
    name = resolve_accountant(accountant)
    if name != "pld":
        raise ValueError(f"incident_epsilon: needs replace-one accounting, which only the pld accountant does (got {accountant!r})")
    eps = epsilon(group_history(history, g), delta, name, REPLACE_ONE)
    return UnitEpsilon(
        epsilon=eps,
        delta=float(delta),
        unit=INCIDENT_UNIT,
        neighbouring=ADD_REMOVE,
        group_size=int(g),
        example_neighbouring=REPLACE_ONE,
        method=f"replace-one PLD of each step's group of up to {int(g)} examples (rate 1-(1-q)^g, sensitivity gC)",
    )
