"""summary.json's `epsilon_by_unit`: one DP architecture's guarantee read three ways — per incident
record, per person within one agency, per person across the federation — with the textbook
group-privacy conversion for the heaviest person beside them for contrast. Each figure names
its δ and how it was obtained (privacy/person_unit.py has the arguments).

From the agencies' ledgers, spent to date at each ledger's pinned δ; max over agencies, never an
average. Record unit: the record ledgers; the person figures are group conversions for the
heaviest person (the only person-level statement record-level DP-SGD supports). Person unit: the
person ledgers; the record figure is their replace-one ε (one record changes one unit's content).

An agency that released at both units (its folder used in place by runs of either unit) has
both ledgers: its record figure then composes the two under replace-one
(`record_epsilon_of_both`), and under the person unit its person figure adds, by basic
composition, the group conversion of its record-unit releases for its heaviest person (none is
possible without person keys: the figure is then None, with the reason).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policedata.persons import NO_PERSON, RecordPersons
from privacy.accounting import ADD_REMOVE, Entry, epsilon
from privacy.ledger import Ledger, LedgerError
from privacy.person_clip import owners
from privacy.person_unit import (
    ADD_REMOVE_PERSON,
    federation_epsilon,
    group_conversion,
    person_ledger_path,
    record_epsilon_of_both,
    record_epsilon_of_person_releases,
)

__all__ = ["AgencyLedger", "HeaviestPerson", "epsilon_by_unit", "heaviest_person"]


@dataclass(frozen=True)
class HeaviestPerson:
    """In one agency's training records: the most records any person is in (any role), and the
    most units (owners, privacy.person_clip.owners) any person's records fall in."""

    records: int
    units: int


def heaviest_person(persons: RecordPersons) -> HeaviestPerson:
    """The heaviest person of the records `persons` describes (0, 0 for records with nobody)."""
    n = len(persons.keys)
    if n == 0:
        return HeaviestPerson(0, 0)
    owner = owners(persons.victim, persons.suspect)
    pairs = [np.stack([persons.of(role), owner], axis=1) for role in ("victim", "suspect")]
    both = np.concatenate(pairs)
    both = np.unique(both[both[:, 0] != NO_PERSON], axis=0)  # (person, owner) once each
    units = np.bincount(both[:, 0], minlength=n)
    return HeaviestPerson(int(persons.records_per_person().max()), int(units.max()))


@dataclass(frozen=True)
class AgencyLedger:
    """What `epsilon_by_unit` needs of one agency: its record ledger's path, and its heaviest
    person (None where the data has no person keys)."""

    name: str
    ledger: Path
    heaviest: HeaviestPerson | None = None


def _history(path: Path, relation: str) -> tuple[list[Entry], float | None]:
    """The ledger's releases and pinned δ; none where it cannot be read or accounts for another
    relation than `relation` (e.g. a hotspot ledger's replace-one examples: no person figure)."""
    try:
        if not path.is_file():
            return [], None
        with Ledger.inspect(path) as book:
            if book.lifetime_history() and book.pinned_neighbouring() != relation:
                return [], None
            return book.history(), book.pinned_delta()
    except LedgerError:
        return [], None


def _record_releases_for_person(history: list[Entry], delta: float, accountant: str, heaviest: HeaviestPerson | None) -> dict[str, Any]:
    """What an agency's record-unit releases give its heaviest person: group privacy of their
    record ε (k records); no bound (ε None) where the agency has no person keys to count k."""
    eps = epsilon(history, delta, accountant, ADD_REMOVE)
    if heaviest is None or heaviest.records == 0:
        return {"epsilon": None, "delta": delta, "record_epsilon": eps, "method": "no person keys: a person's records cannot be counted, so no bound"}
    return {**group_conversion(eps, delta, heaviest.records).as_dict(), "record_epsilon": eps}


def _or_inf(eps: float | None) -> float:
    """None (no bound) ranks above every ε."""
    return math.inf if eps is None else eps


def _figure(eps: float | None, delta: float, method: str, **extra: Any) -> dict[str, Any]:
    return {"epsilon": eps, "delta": delta, "method": method, **extra}


def epsilon_by_unit(unit: str, agencies: Sequence[AgencyLedger], *, max_agencies: int, accountant: str = "auto") -> dict[str, Any] | None:
    """The block for one DP architecture (None if no agency has charged anything)."""
    ledger_of = (lambda a: person_ledger_path(a.ledger)) if unit == "person" else (lambda a: a.ledger)
    relation = ADD_REMOVE_PERSON if unit == "person" else ADD_REMOVE
    read = {a.name: _history(ledger_of(a), relation) for a in agencies}
    histories: Mapping[str, list[Entry]] = {n: h for n, (h, d) in read.items() if h and d is not None}
    if not histories:
        return None
    delta = max(float(d) for h, d in read.values() if h and d is not None)  # the weakest pinned δ
    heaviest = {a.name: a.heaviest for a in agencies if a.name in histories}
    per_agency: dict[str, dict[str, Any]] = {}
    # The other unit's ledger of each agency (releases there count too, see the module docstring).
    other_of = (lambda a: a.ledger) if unit == "person" else (lambda a: person_ledger_path(a.ledger))
    others = {a.name: _history(other_of(a), ADD_REMOVE if unit == "person" else ADD_REMOVE_PERSON)[0] for a in agencies if a.name in histories}
    for name, history in histories.items():
        own = epsilon(history, delta, accountant, ADD_REMOVE)  # both relations are accounted add/remove
        other = others.get(name) or []
        if unit == "person":
            record = record_epsilon_of_both(other, history, delta) if other else record_epsilon_of_person_releases(history, delta)
            entry: dict[str, Any] = {"record": record, "person_within_agency": own}
        else:
            record = record_epsilon_of_both(history, other, delta) if other else own
            entry = {"record": record, "person_within_agency": None}
        if other:
            entry["other_unit_releases"] = len(other)
        hp = heaviest.get(name)
        if hp is not None and hp.records > 0:
            entry["heaviest_person_records"] = hp.records
            entry["group_conversion_heaviest_person"] = group_conversion(record, delta, hp.records).as_dict()
            if unit == "person":
                entry["heaviest_person_units"] = hp.units
                entry["person_all_roles_heaviest"] = _all_roles(record, delta, hp.units)
            else:
                entry["person_within_agency"] = entry["group_conversion_heaviest_person"]["epsilon"]
        if unit == "person" and other:  # its record-unit releases protect a person by group privacy only
            entry["record_unit_releases_group_conversion"] = _record_releases_for_person(other, delta, accountant, hp)
            added = entry["record_unit_releases_group_conversion"]["epsilon"]
            entry["person_within_agency"] = None if added is None else own + added
        per_agency[name] = entry
    worst = max(per_agency, key=lambda n: per_agency[n]["record"])
    out: dict[str, Any] = {
        "unit": unit,
        "record": _figure(per_agency[worst]["record"], delta, "replace-one PLD of the person ledgers (one record changes one person's clipped sum)" if unit == "person" else "the record ledgers (add/remove-one record)", agency=worst),
        "per_agency": per_agency,
    }
    both = [n for n in per_agency if per_agency[n].get("other_unit_releases")]
    if both:
        out["record"]["method"] = f"replace-one PLD of each agency's record and person ledgers together ({', '.join(both)} released at both units)"
        out["released_at_both_units"] = both
    conversions = {n: e["group_conversion_heaviest_person"] for n, e in per_agency.items() if "group_conversion_heaviest_person" in e}
    if conversions:
        top = max(conversions, key=lambda n: conversions[n]["epsilon"])
        out["group_conversion_heaviest_person"] = {**conversions[top], "agency": top, "method": f"group privacy (k·ε, k·e^((k-1)ε)·δ) of the record-level ε for the heaviest person (k = {conversions[top]['k']} records); for contrast"}
    if unit == "person":
        within = max(per_agency, key=lambda n: _or_inf(per_agency[n]["person_within_agency"]))
        method = "add/remove one person with every record attributed to them (victim, else suspect), PLD of the person ledger"
        if both:
            method += f"; plus, by basic composition, the group conversion of the record-unit releases of {', '.join(both)} for their heaviest person"
        out["person_within_agency"] = _figure(per_agency[within]["person_within_agency"], delta, method, agency=within)
        out["person_across_federation"] = federation_epsilon(histories, delta, max_agencies).as_dict()
        if both:  # basic composition with the largest group conversions of record-unit releases
            extra = sorted((_or_inf(per_agency[n]["record_unit_releases_group_conversion"]["epsilon"]) for n in both), reverse=True)[:max_agencies]
            total = out["person_across_federation"]["epsilon"] + sum(extra)
            out["person_across_federation"]["epsilon"] = None if math.isinf(total) else total
            out["person_across_federation"]["method"] += f"; plus, by basic composition, the group conversions of the record-unit releases of {', '.join(both)}"
        spread = {n: e["person_all_roles_heaviest"] for n, e in per_agency.items() if e.get("person_all_roles_heaviest")}
        if spread:
            top = max(spread, key=lambda n: spread[n]["epsilon"])
            out["person_all_roles_heaviest"] = {**spread[top], "agency": top}
    elif conversions:
        # Record-level DP-SGD says nothing per person beyond group privacy: the conversions, and
        # across agencies their basic composition over the max_agencies largest.
        heaviest_agency = max(conversions, key=lambda n: conversions[n]["epsilon"])
        top = conversions[heaviest_agency]
        out["person_within_agency"] = _figure(top["epsilon"], top["delta"], "group privacy of the record-level ε for the heaviest person (no person-level mechanism)", agency=heaviest_agency)
        largest = sorted(conversions.values(), key=lambda c: c["epsilon"], reverse=True)[:max_agencies]
        out["person_across_federation"] = _figure(
            sum(c["epsilon"] for c in largest), min(1.0, sum(c["delta"] for c in largest)),
            f"basic composition of the {len(largest)} largest per-agency group conversions (max_agencies = {max_agencies})", max_agencies=max_agencies,
        )
    else:
        out["person_within_agency"] = out["person_across_federation"] = None
    return out


def _all_roles(unit_replace_epsilon: float, delta: float, units: int) -> dict[str, Any]:
    """ε for a person whose records fall in `units` units (their own and their victims'):
    removing them from every record changes those g units' contents (their own one removed), so
    group privacy over g replace-one neighbours of the unit-level replace-one ε. (privacy.group's
    PLD bound was looser on the runs measured, 21.9 against 18.1 at g = 2, and costs minutes at
    the g of a prolific offender.)"""
    return {**group_conversion(unit_replace_epsilon, delta, units).as_dict(), "units": units, "method": ALL_ROLES_METHOD}


ALL_ROLES_METHOD = (
    "remove the person from every record, in any role: their records span g units (their own and their victims'); "
    "group privacy (g·ε, g·e^((g-1)ε)·δ) of the replace-one ε of one unit"
)
