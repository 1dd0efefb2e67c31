"""The person as the privacy unit: which person a record counts for, the neighbouring relation
a person-level ledger pins, and the ε a reader gets per unit (record, person within one agency,
person across the federation), with the group-privacy conversion beside them for contrast.

Which unit, and why (issue 17, item 2)
--------------------------------------
A record can name two people, its victim and its suspect. "Remove one person and all their
records" then removes records that other people are in too, and no cap on records per person
can be enforced stably over every role: if P and Q share a record and Q is capped at k records,
removing P frees a place in Q's k, so a record of Q's that was dropped comes back. P's removal
would then change records that are not P's; with P in many records (a prolific offender, each
record with another victim), the number of such changes has no bound, and so neither has the
sensitivity. Clipping each record to C/k and bounding every person over all roles (each step a
subsampled Gaussian of sensitivity C at rate 1-(1-q)^k, like privacy/group.py) is exact only for
data that already has at most k records per person; it cannot be made so by dropping records.

So the unit is a *partition*: every record is attributed to exactly one person, its **owner**,
by a fixed rule that reads the record alone: its victim if it has one, else its suspect, else
nobody (then the record is a unit of its own). `privacy.person_clip` caps each owner at
`max_records` records by a rule that reads only that owner's records, sums and clips per owner,
and samples owners. Adding or removing one owner with all the records attributed to them
changes exactly one unit's contribution, by at most C, so each step is a Poisson-subsampled
Gaussian over units with sensitivity C and the ordinary add/remove accounting applies with
persons in place of records: ADD_REMOVE_PERSON below.

What that protects, exactly: a person and every record in which they are the victim, and every
record without a victim in which they are the suspect — at the person-level ε. What it does not
protect at that ε: a suspect's presence in records owned by their victims. Removing such a
person changes their own unit and the content of every victim's unit they appear in; for a
person spread over g units that is group privacy over g replace-one changes of a unit,
reported as `person_all_roles_heaviest` for the heaviest such person.

Across agencies (issue 17, item 3)
----------------------------------
Agencies train on their own records with independent noise, so removing one person from the
federation changes at most one unit in each of the agencies they appear in. That number is a
stated public bound, `privacy.person.max_agencies` (docs/threat-model.md, "People"): the
federation-level person guarantee is the composition (PLD, exact) of the `max_agencies` agencies
whose composition is worst — every such subset is composed and the largest ε taken (past
MAX_SUBSETS subsets, every agency is composed: a valid, looser bound).

Ledgers
-------
A person-level release is charged to the agency's *person ledger*, a file of its own
(`person_ledger_path`) that pins ADD_REMOVE_PERSON at its first charge, as the record ledger
pins add-remove. Separate files, not event kinds in one file: an ε is only meaningful under one
relation, a budget is a promise about one unit (ε = 4 per person is not ε = 4 per record), and a
file that pins its relation refuses a charge under another one (RelationMismatch) with the
existing machinery (δ pinning, anchoring, budget refusal) unchanged. What one file does not see
of the other is reported, not hidden: `epsilon_by_unit` gives the record-level ε of the person
releases and, for record-level releases, the group-privacy conversion for the heaviest person.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from privacy.accounting import ADD_REMOVE, REPLACE_ONE, Entry, MechanismEvent, epsilon
from privacy.mechanisms import DISCRETE_GAUSSIAN

__all__ = [
    "ADD_REMOVE_PERSON",
    "FederationEpsilon",
    "GroupConversion",
    "accounting_relation",
    "federation_epsilon",
    "group_conversion",
    "other_unit_ledger_path",
    "person_ledger_path",
    "record_epsilon_of_both",
    "record_epsilon_of_person_releases",
]

# One person (all the records attributed to them, privacy.person_clip.owners) added or removed.
ADD_REMOVE_PERSON = "add-remove-person"
UNITS = ("record", "person")
PERSON_LEDGER_DIR = "person-unit"  # beside the record ledger; the file keeps the ledger's name
# Subsets of agencies composed one by one for the federation figure; beyond, every agency is
# composed (a valid, looser bound: composing more mechanisms never lowers ε).
MAX_SUBSETS = 256


def accounting_relation(neighbouring: str) -> str:
    """The relation the accountants compute `neighbouring` as: a person-level release is a
    subsampled Gaussian over units, accounted add/remove exactly as records are."""
    return ADD_REMOVE if neighbouring == ADD_REMOVE_PERSON else neighbouring


def other_unit_ledger_path(ledger: Path) -> Path:
    """The agency's ledger of the other unit: the person ledger beside a record ledger, or the
    record ledger a person ledger sits beside."""
    return ledger.parent.parent / ledger.name if ledger.parent.name == PERSON_LEDGER_DIR else person_ledger_path(ledger)


def person_ledger_path(record_ledger: Path) -> Path:
    """Where an agency keeps its person ledger: a folder beside its record ledger, the same file
    name (so `peel budget` finds both)."""
    return record_ledger.parent / PERSON_LEDGER_DIR / record_ledger.name


@dataclass(frozen=True)
class GroupConversion:
    """Group privacy of an (ε, δ) guarantee for a group of k units: (kε, k·e^{(k-1)ε}·δ)
    (Dwork & Roth, Theorem 2.2 generalised; the textbook conversion, shown for contrast)."""

    k: int
    epsilon: float
    delta: float
    from_epsilon: float
    from_delta: float
    method: str = "group privacy: (k·ε, k·e^((k-1)ε)·δ)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_conversion(eps: float, delta: float, k: int) -> GroupConversion:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"group size k must be a whole number ≥ 1, got {k!r}")
    k = int(k)
    exponent = (k - 1) * eps
    group_delta = k * math.exp(exponent) * delta if exponent < 700 else math.inf
    return GroupConversion(k, k * eps, min(1.0, group_delta), eps, delta)


def record_epsilon_of_person_releases(history: Sequence[Entry], delta: float) -> float:
    """ε per incident record of a person ledger's releases. Removing one record changes one
    unit's content (its owner's clipped sum, both sides within the C-ball; the cap's selection
    reads only that owner's records) or removes a one-record unit: each step is dominated by the
    replace-one subsampled Gaussian at the same (σ, q), which the PLD accountant computes.

    A person-capped histogram (discrete Gaussian at the person sensitivity Δ) is different: a
    removed record the caps kept can let its owner's next record in, moving two cells by up to
    one record's value each, √2 times what one record moves — more than Δ when the caps keep one
    record per person. The ledger does not keep the caps, so such events are accounted at
    ⌈√2·Δ⌉ (an upper bound, loose when the caps keep several records)."""
    if not history:
        return 0.0
    return epsilon([_record_swap(e) for e in history], delta, "pld", REPLACE_ONE)


def record_epsilon_of_both(record_history: Sequence[Entry], person_history: Sequence[Entry], delta: float) -> float:
    """ε per incident record of an agency that released at both units: its record ledger's
    releases and its person ledger's (as `record_epsilon_of_person_releases` converts them)
    composed under replace-one, the relation both can be stated in (the record ledger's own
    add/remove figure alone would leave the person-unit releases out)."""
    history = [*record_history, *(_record_swap(e) for e in person_history)]
    return epsilon(history, delta, "pld", REPLACE_ONE) if history else 0.0


def _record_swap(entry: Entry) -> Entry:
    if isinstance(entry, MechanismEvent) and entry.kind == DISCRETE_GAUSSIAN:
        return replace(entry, sensitivity=float(math.ceil(math.sqrt(2) * entry.sensitivity - 1e-9)))
    return entry


@dataclass(frozen=True)
class FederationEpsilon:
    """A person's ε over the whole federation: the worst composition over `max_agencies` agencies."""

    epsilon: float
    delta: float
    max_agencies: int
    agencies: tuple[str, ...]  # the subset whose composition is largest (all agencies past MAX_SUBSETS)
    method: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agencies": list(self.agencies)}


def federation_epsilon(histories: Mapping[str, Sequence[Entry]], delta: float, max_agencies: int) -> FederationEpsilon:
    """ε at `delta` of one person who may appear in up to `max_agencies` of the agencies whose
    person-level `histories` (already per unit: add/remove of one unit per agency) are given: the
    PLD composition of every subset of that size, the largest taken."""
    if isinstance(max_agencies, bool) or int(max_agencies) != max_agencies or max_agencies < 1:
        raise ValueError(f"max_agencies must be a whole number ≥ 1, got {max_agencies!r}")
    names = sorted(n for n, h in histories.items() if h)
    m = min(int(max_agencies), len(names))
    if m == 0:
        return FederationEpsilon(0.0, float(delta), int(max_agencies), (), "no releases")
    subsets = math.comb(len(names), m)
    if subsets > MAX_SUBSETS:
        every = [e for n in names for e in histories[n]]
        return FederationEpsilon(
            epsilon(every, delta, "pld", ADD_REMOVE), float(delta), int(max_agencies), tuple(names),
            f"PLD composition of all {len(names)} agencies ({subsets} subsets of {m} is too many to compose one by one; an upper bound)",
        )
    best, worst = -1.0, tuple(names[:m])
    for subset in itertools.combinations(names, m):
        eps = epsilon([e for n in subset for e in histories[n]], delta, "pld", ADD_REMOVE)
        if eps > best:
            best, worst = eps, subset
    return FederationEpsilon(best, float(delta), int(max_agencies), worst, f"PLD composition of the worst {m} of {len(names)} agencies (every subset composed)")
