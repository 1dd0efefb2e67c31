"""What `peel analyze` says about its own noise: the empirical audit of each query's release
(with `audit: true`; privacy.audit.count_audit) and, in federated mode, when the share σ was
floored — the sum of n − t discrete Gaussian shares is a discrete Gaussian only approximately
(privacy.count_release), so each share keeps a least σ, and above a per-histogram ε of about
that floor's the release spends less than asked and gets no more accurate (Skellam shares,
`analytics.noise: skellam`, sum exactly and are never floored)."""

from __future__ import annotations

from typing import Any

from privacy.audit.count_audit import CountAudit, audit_release
from privacy.mechanisms import DISCRETE_GAUSSIAN

__all__ = ["audit_note", "audit_queries", "floor_note"]

# Draws per world: about 5 s for 7 shares; the broken-mechanism tests show what this many catch.
AUDIT_DRAWS = 8000


def _design(q: dict[str, Any]) -> tuple[float, int, float, int, str]:
    """(share σ, honest shares, charged σ, Δ, noise) of a released query's first histogram."""
    sensitivity = int(next(iter(q["sensitivity"].values())))
    noise = str(q.get("noise") or DISCRETE_GAUSSIAN)
    if q["mode"] == "federated":
        return float(q["share_sigma"]), int(q["honest_shares"]), float(q["sigma_charged"]), sensitivity, noise
    return float(q["sigma"]), 1, float(q["sigma_charged"]), sensitivity, noise  # local, federated-trusted: one draw of σ


def audit_queries(queries: dict[str, dict[str, Any]], delta: float) -> None:
    """Add `audit` (CountAudit.as_dict) to every released query; queries that share a design
    share one audit."""
    done: dict[tuple[float, int, float, int, str], CountAudit] = {}
    for q in queries.values():
        if q.get("refused") or q.get("sigma_charged") is None:
            continue
        key = _design(q)
        if key not in done:
            share, honest, charged, sensitivity, noise = key
            done[key] = audit_release(share, honest, charged, delta, sensitivity=sensitivity, draws_per_world=AUDIT_DRAWS, noise=noise)
        q["audit"] = done[key].as_dict()


def audit_note(q: dict[str, Any]) -> str:
    """The end table's words for a query's audit ('' without one)."""
    audit = q.get("audit")
    if not audit:
        return ""
    verdict = "within" if audit["passed"] else "ABOVE: a privacy bug"
    return f"; audit: ε ≥ {audit['lower_bound']:.2f} measured (ceiling {audit['ceiling']:.2f}), {verdict} the {audit['claimed_epsilon']:.2f} charged"


def floor_note(q: dict[str, Any]) -> str:
    """The end table's words when the federated share σ was floored ('' otherwise)."""
    if not q.get("share_floored"):
        return ""
    return (
        f"; share σ floored at {q['share_sigma']:.3g} (a sum of {q['honest_shares']} discrete Gaussian shares is one only "
        f"approximately): σ {q['sigma_charged']:.3g} charged instead of {q['sigma']:.3g} — less ε spent than asked, no more accuracy; analytics.noise: skellam has no floor"
    )
