"""A DP agency's released record count: its number of training records plus Gaussian noise,
released once per data set and charged to its ledger before it first leaves.

Why: DP-SGD's (ε, δ) is accounted for add/remove-one neighbours, whose record counts differ by
one. The exact count would tell them apart with certainty, and it used to leave in the FedAvg
weight, the sampling rate (batch ÷ n) and the steps per round. Now all of those are computed
from this released count, so the whole of what leaves is DP for the relation the accountant uses.

The released value is kept beside the ledger with a fingerprint of the training set: a later run
on the same records re-sends the same value (re-sending a release costs nothing), new records
mean a new, charged release.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clients.agency import Agency, load_split
from clients.trail import record_reply
from federation import contract
from privacy.ledger import Ledger

COUNT_ARCHITECTURE = "record-count"  # the ledger's `architecture` column for this release
COUNT_MECHANISM = "gaussian-count"


@dataclass(frozen=True)
class ReleasedCount:
    value: int  # what leaves the agency (≥ 1)
    sigma: float  # std of the Gaussian noise it carries (sensitivity 1)


def _path(agency: Agency) -> Path:
    return agency.ledger.with_name(f"{agency.ledger.stem}.count.json")


# Fingerprints of the training arrays this process holds (load_split caches one Split per agency),
# keyed by the arrays' identity and kept only while they live: hashed once, not at every round.
_fingerprints: dict[tuple[int, int], tuple[weakref.ref[np.ndarray], weakref.ref[np.ndarray], str]] = {}


def fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    """What the count is of: the training set's bytes (kept only in the agency's own folder)."""
    key = (id(X), id(y))
    known = _fingerprints.get(key)
    if known is not None and known[0]() is X and known[1]() is y:
        return known[2]
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    value = digest.hexdigest()
    forget = lambda _ref: _fingerprints.pop(key, None)  # noqa: E731 — an array died: its id may be reused
    _fingerprints[key] = (weakref.ref(X, forget), weakref.ref(y, forget), value)
    return value


def noisy_count(n: int, sigma: float) -> int:
    """n + N(0, σ²) rounded, at least 1, from OS entropy (nobody may predict the noise)."""
    rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
    return max(1, int(round(n + rng.normal(0.0, sigma))))


def released_count(agency: Agency, run_id: str, neighbouring: str = "add-remove", *, units: tuple[int, str] | None = None) -> ReleasedCount:
    """The agency's released training-record count: the kept one if it is of these records and
    this noise level, else a new release — charged to the ledger first (under the agency's
    `neighbouring` relation: replace-one over-charges a count, which replacing a record does not
    change), kept durably before it is returned (so it can leave). Raises BudgetExceeded/LedgerError
    from the charge."""
    split = load_split(agency)
    policy = agency.policy
    print_ = fingerprint(split.X_train, split.y_train)
    n = len(split.y_train)
    if units is not None:  # privacy.unit person: a count of (n, what they are) units, not of records
        n, print_ = units[0], hashlib.sha256(f"{print_}/{units[1]}".encode()).hexdigest()
    path = _path(agency)
    if path.exists():
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("fingerprint") == print_ and float(kept.get("sigma", -1)) == policy.count_sigma:
            return ReleasedCount(int(kept["value"]), float(kept["sigma"]))
    with Ledger.open(agency.ledger, agency.name) as ledger:
        ledger.set_budget(policy.budget, policy.delta, source=f"run {run_id}")
        spent = ledger.charge(run_id, COUNT_ARCHITECTURE, 0, (policy.count_sigma, 1.0, 1), delta=policy.delta, accountant=policy.accountant, budget=policy.budget, mechanism=COUNT_MECHANISM, neighbouring=neighbouring)
    released = ReleasedCount(noisy_count(n, policy.count_sigma), policy.count_sigma)
    # The count leaves with the agency's next reply; the trail holds it from now.
    metrics = {
        contract.NUM_EXAMPLES: released.value,
        contract.EPSILON_SPENT_TO_DATE: spent,
        contract.SIGMA: policy.count_sigma,
        contract.SAMPLE_RATE: 1.0,
        contract.STEPS: 1,
        contract.DELTA: policy.delta,
    }
    record_reply(agency, {"architecture": COUNT_ARCHITECTURE, "server-round": 0}, "count-release", None, metrics, fields=[contract.NUM_EXAMPLES])
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"fingerprint": print_, "value": released.value, "sigma": released.sigma, "run_id": run_id}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return released

