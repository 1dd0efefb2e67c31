"""A person canary audit (issue 17, item 5): the one-run audit of `privacy.audit.canary`, with
*people* as canaries and the whole federation as the mechanism.

k canary persons are made up, each with m records in every one of 2-3 agencies (the same person
seen by neighbouring forces: their records there are near copies of one point, with one label
drawn by a fair coin). Each canary person is in the data with probability ½ (a coin nobody else
sees), with all their records in every agency, or nowhere. Every agency trains person-level
DP-SGD (`privacy.person_clip.train_person_dp`, each canary person one unit there) on its own rows
plus the included canaries; the attacker sees every agency's final model and scores a canary by
the sum of its margins under them. The claim audited is the federation-level person ε: the
composition of those agencies' person-level releases (`privacy.person_unit.federation_epsilon`).

A lower bound above the claim would show a bug in the clipping, the sampling or the accounting.
The agencies train independently here (no averaging between rounds): the released models are
then exactly the composed per-agency mechanisms the claim is about.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from privacy.audit.canary import audit_result, guess_grid
from privacy.audit.mia import margins
from privacy.budget import DPPlan
from privacy.person_clip import BoundedUnits, train_person_dp
from privacy.person_unit import federation_epsilon
from tasks.model import make_model

__all__ = ["AgencyRows", "person_canaries", "person_canary_audit"]


@dataclass(frozen=True)
class AgencyRows:
    """One agency's training rows and their units (privacy.person_clip.bound_contributions), and
    the person-level plan it trains with."""

    name: str
    X: np.ndarray
    y: np.ndarray
    units: BoundedUnits
    plan: DPPlan


def person_canaries(k: int, m: int, agencies: int, n_features: int, seed: int, *, spread: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k canary persons: a centre per person (i.i.d. N(0, 1) entries), their label (a fair coin),
    and per agency m records near the centre (N(0, spread²) added), shape (agencies, k, m, d)."""
    if min(k, m, agencies, n_features) < 1:
        raise ValueError(f"person_canaries: need k, m, agencies, n_features ≥ 1, got {k}, {m}, {agencies}, {n_features}")
    rng = np.random.default_rng([seed, 0x9E75])
    centres = rng.standard_normal((k, n_features)).astype(np.float32)
    labels = rng.integers(0, 2, size=k).astype(np.float32)
    records = (centres[None, :, None, :] + spread * rng.standard_normal((agencies, k, m, n_features))).astype(np.float32)
    return centres, labels, records


def person_canary_audit(
    agencies: Sequence[AgencyRows],
    k: int,
    m: int,
    seed: int,
    *,
    hidden: Sequence[int] = (16,),
    lr: float = 0.01,
    confidence: float = 0.95,
    noise_seed: int | None = None,
) -> dict[str, Any]:
    """Run the audit over `agencies` (2-3 of them) and return `audit_result`'s dict plus `m`,
    `agencies` and the claim's `method`. Every agency's δ must be the same (the claim's δ)."""
    if not 1 <= len(agencies) <= 3:
        raise ValueError(f"person_canary_audit: a person canary spans 1-3 agencies, got {len(agencies)}")
    deltas = {a.plan.delta for a in agencies}
    if len(deltas) != 1:
        raise ValueError(f"person_canary_audit: the agencies' plans differ in δ ({sorted(deltas)})")
    delta = deltas.pop()
    n_features = agencies[0].X.shape[1]
    centres, labels, records = person_canaries(k, m, len(agencies), n_features, seed)
    included = np.random.default_rng([seed, 0x1C1]).random(k) < 0.5
    generator = torch.Generator().manual_seed(noise_seed if noise_seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    total = np.zeros(k)
    histories = {}
    for j, agency in enumerate(agencies):
        X, y, units = _with_canaries(agency, records[j][included], labels[included])
        model = make_model(n_features, list(hidden), seed=seed)
        for _ in range(agency.plan.rounds):
            train_person_dp(model, X, y, units, plan=agency.plan, lr=lr, generator=generator)
        total += margins(model, centres, labels)
        histories[agency.name] = [agency.plan.release] * agency.plan.rounds
    claim = federation_epsilon(histories, delta, len(agencies))
    result = audit_result(total, included, guess_grid(k), delta=delta, confidence=confidence, claimed=claim.epsilon, what="person canary audit")
    return {**result, "m": m, "agencies": [a.name for a in agencies], "claim_method": claim.method}


def _with_canaries(agency: AgencyRows, records: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, BoundedUnits]:
    """The agency's rows followed by the included canaries' records, each canary one more unit."""
    n_in, m = records.shape[0], records.shape[1]
    X = np.concatenate([agency.X, records.reshape(n_in * m, -1)])
    y = np.concatenate([agency.y, np.repeat(labels, m)]).astype(np.float32)
    unit = np.concatenate([agency.units.unit, agency.units.n_units + np.repeat(np.arange(n_in), m)])
    units = BoundedUnits(unit.astype(np.int64), agency.units.n_units + n_in, max(agency.units.max_records, m), agency.units.dropped)
    return X.astype(np.float32), y, units
