"""An agency under `privacy.unit: person` (its policy's `unit`): its training records as units
(one per owner, privacy.person_clip), its person ledger, and its released unit count.

Everything stays in the agency: persons.csv and federation.key are read from its own folder; the
only things that leave are the update (person-level DP-SGD) and the unit count (a Gaussian
count, sensitivity 1 person, charged to the person ledger before it leaves) — the same fields as
at record level, with persons in place of records.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import lru_cache

import numpy as np

from clients.agency import Agency, load_split
from clients.count import ReleasedCount, released_count
from policedata.errors import DataError
from policedata.persons import crime_ids_of_record_keys, load_persons, read_federation_key
from privacy.budget import ReleaseRefused
from privacy.person_clip import BoundedUnits, bound_contributions, owners
from privacy.person_unit import ADD_REMOVE_PERSON, person_ledger_path
from tasks.registry import NEIGHBOURING

__all__ = ["ADD_REMOVE_PERSON", "is_person_unit", "person_view", "released_units", "released_weight", "units_of"]


class NoPersons(ReleaseRefused):
    """The agency's policy asks for the person unit but its folder has no usable person keys."""


def is_person_unit(agency: Agency) -> bool:
    return agency.policy.unit == "person"


def person_view(agency: Agency) -> Agency:
    """The agency with its person ledger in place of its record ledger (the plan, the released
    count and the ledger's anchor are kept beside that file)."""
    path = person_ledger_path(agency.ledger)
    path.parent.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(agency, ledger=path)


def units_of(agency: Agency) -> BoundedUnits:
    """The agency's training records as bounded units (cached per agency and split)."""
    split = load_split(agency)
    keys = getattr(split, "train_keys", None)
    if keys is None:
        raise NoPersons(f"privacy.unit person: the {agency.spec.task.name} task's examples carry no record keys to link persons to")
    return _units(agency.folder, agency.policy.person_max_records, tuple(np.asarray(keys, dtype=str).tolist()))


@lru_cache(maxsize=64)
def _units(folder: object, max_records: int, keys: tuple[str, ...]) -> BoundedUnits:
    from pathlib import Path

    where = Path(str(folder))
    try:
        persons = load_persons(where).for_records(crime_ids_of_record_keys(np.asarray(keys)))
        secret = read_federation_key(where)
    except DataError as exc:
        raise NoPersons(f"privacy.unit person: {exc}") from None
    # Equal keys (records with no Crime ID and equal fields) made distinct by their occurrence.
    seen: dict[str, int] = {}
    ids = []
    for key in keys:
        seen[key] = seen.get(key, -1) + 1
        ids.append(key if seen[key] == 0 else f"{key}#{seen[key]}")
    return bound_contributions(owners(persons.victim, persons.suspect), ids, max_records, secret)


def released_units(agency: Agency, run_id: str) -> ReleasedCount:
    """The agency's released unit count (its FedAvg weight and the base of its person sampling
    rate), charged to its person ledger once per set of units."""
    units = units_of(agency)
    shape = hashlib.sha256(units.unit.tobytes() + str(units.max_records).encode()).hexdigest()
    return released_count(person_view(agency), run_id, ADD_REMOVE_PERSON, units=(units.n_units, shape))


def released_weight(agency: Agency, run_id: str) -> int:
    """The agency's FedAvg weight: its released unit count under the person unit, else its
    released record count (each released, and charged to its own ledger, once)."""
    if is_person_unit(agency):
        return released_units(agency, run_id).value
    return released_count(agency, run_id, NEIGHBOURING[agency.spec.task.name]).value
