"""The harness's person figures for summary.json (`epsilon_by_unit` per DP architecture): each
agency's ledgers and, where its folder has person keys, its heaviest person among its training
records. Read where the harness runs beside the agencies (simulation); nothing here leaves an
agency, and an agency without persons.csv simply gets no person-level contrast figures."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from experiments.config import PeelConfig
from experiments.run_folder import RunFolder
from policedata.errors import DataError
from policedata.persons import NO_PERSON, RecordPersons, crime_ids_of_record_keys, has_persons, load_persons
from privacy.person_epsilons import AgencyLedger, epsilon_by_unit, heaviest_person
from privacy.person_unit import person_ledger_path

log = logging.getLogger("peel.run")


def _record_persons(folder: Path, train_keys: Any) -> RecordPersons | None:
    """Who is in each of the agency's training records (None: its folder has no person keys)."""
    if train_keys is None or not has_persons(folder):
        return None
    try:
        table = load_persons(folder)
    except DataError as exc:
        log.warning("no person figures for %s: %s", folder, exc)
        return None
    return table.for_records(crime_ids_of_record_keys(train_keys))


def record_persons_of(folder: RunFolder) -> dict[str, RecordPersons]:
    """Per agency with person keys, who is in each of its training records (read once: both
    `epsilon_by_unit_of` and `persons_of` take it); empty for a task whose examples are not records."""
    if folder.config.task.name != "outcome":  # a hotspot example is an area-month, not a person's record
        return {}
    out = {}
    for a in folder.federation.agencies:
        persons = _record_persons(Path(a["folder"]), getattr(folder.splits[a["name"]], "train_keys", None))
        if persons is not None:
            out[a["name"]] = persons
    return out


def epsilon_by_unit_of(folder: RunFolder, persons: dict[str, RecordPersons]) -> dict[str, Any] | None:
    """`epsilon_by_unit` of the run's ledgers, spent to date like `epsilon` (so the same block for
    every DP architecture of the run); None if no agency has charged anything. `persons`:
    `record_persons_of(folder)`."""
    config = folder.config
    if config.task.name != "outcome":
        return None
    agencies = [
        AgencyLedger(a["name"], Path(a["ledger"]), heaviest_person(persons[a["name"]]) if a["name"] in persons else None)
        for a in folder.federation.agencies
    ]
    return epsilon_by_unit(config.privacy.unit, agencies, max_agencies=config.privacy.person.max_agencies, accountant=config.privacy.accountant)


# "Who pays": the share of victim records that the most-victimised TOP_SHARE of victims suffer.
TOP_SHARE = 0.05
PERSONS_NOTE = (
    "The harness's figures of each agency's training records and its persons.csv (in simulation it "
    "holds every agency's records): not a release, nothing here leaves an agency. people: distinct "
    "persons in any role; top_victim_share: share of the records with a victim that the most-victimised "
    "5% of victims are in; repeat_record_share: share of records naming someone who is in 2 or more of "
    "them; dropped_by_cap (person unit): records over privacy.person.max_records per person, left out of training."
)


def top_share(counts: np.ndarray, share: float = TOP_SHARE) -> float | None:
    """Share of all of `counts` (records per person) held by the `share` of people with the most
    (at least one person); None when nobody has any."""
    ordered = np.sort(np.asarray(counts)[np.asarray(counts) > 0])[::-1]
    if ordered.size == 0:
        return None
    top = max(1, math.ceil(share * ordered.size))
    return float(ordered[:top].sum() / ordered.sum())


def who_pays(persons: RecordPersons, dropped: int | None = None) -> dict[str, Any]:
    """One agency's person figures over the records `persons` describes (see PERSONS_NOTE)."""
    per_person = persons.records_per_person()
    victims = persons.records_per_person("victim")
    repeat = np.append(per_person >= 2, False)  # code NO_PERSON (-1) reads the appended False
    named = [repeat[codes] for codes in (persons.victim, persons.suspect)]
    n = len(persons.victim)
    return {
        "records": n,
        "people": int((per_person > 0).sum()),
        "victims": int((victims > 0).sum()),
        "records_with_victim": int((persons.victim != NO_PERSON).sum()),
        "top_victim_share": top_share(victims),
        "repeat_record_share": float((named[0] | named[1]).mean()) if n else None,
        "heaviest_person_records": heaviest_person(persons).records,
        "dropped_by_cap": dropped,
    }


def persons_of(folder: RunFolder, persons: dict[str, RecordPersons]) -> dict[str, Any] | None:
    """summary.json's `persons`: per agency, who_pays of its training records (under privacy.unit
    person with the records the cap dropped, as its ClientApp bounds them); None for a task
    whose examples are not records, or when no agency has person keys. `persons`:
    `record_persons_of(folder)`."""
    config = folder.config
    person_unit = config.privacy.unit == "person"
    per_agency: dict[str, dict[str, Any]] = {}
    for index, a in enumerate(folder.federation.agencies):
        if a["name"] in persons:
            per_agency[a["name"]] = who_pays(persons[a["name"]], _dropped(folder, index) if person_unit else None)
    if not per_agency:
        return None
    return {"unit": config.privacy.unit, "max_records": config.privacy.person.max_records, "top_share": TOP_SHARE, "per_agency": per_agency, "note": PERSONS_NOTE}


def _dropped(folder: RunFolder, index: int) -> int | None:
    """Records agency `index`'s ClientApp leaves out under the per-person cap (None: no units)."""
    from clients.person_round import NoPersons, units_of
    from experiments.audit import _agency  # the agency as its ClientApp finds itself

    try:
        return int(units_of(_agency(folder, index)).dropped)
    except NoPersons as exc:
        log.warning("no capped-record count: %s", exc)
        return None


def unit_ledgers(agencies: list[dict], config: PeelConfig) -> list[dict]:
    """The agencies (federation spec entries) with the ledgers their DP releases are charged to:
    under privacy.unit person, the person ledgers (privacy.person_unit.person_ledger_path)."""
    if config.privacy.unit != "person":
        return agencies
    return [{**a, "ledger": str(person_ledger_path(Path(a["ledger"])))} for a in agencies]


def end_table_line(summary: dict[str, Any]) -> str | None:
    """The end table's line of `epsilon_by_unit` (the same block for every DP architecture), with
    the record-level guarantee's group conversion for the heaviest person beside it."""
    block = next((a.get("epsilon_by_unit") for a in summary["architectures"].values() if a.get("epsilon_by_unit")), None)
    if not block:
        return None

    def figure(name: str) -> str:
        x = block.get(name)
        if not x:
            return "-"
        if x["epsilon"] is None:
            return "unbounded (record-unit releases, no person keys)"
        return f"{x['epsilon']:.3g}" + ("" if x["delta"] == block["record"]["delta"] else f" (δ={x['delta']:.2g})")

    across = block.get("person_across_federation") or {}
    line = (
        f"ε by unit ({block['unit']}-level DP, max over agencies, δ={block['record']['delta']:g}): record {figure('record')}, "
        f"person within an agency {figure('person_within_agency')}, person across the federation (≤ {across.get('max_agencies', '?')} agencies) "
        f"{figure('person_across_federation')}"
    )
    if block.get("released_at_both_units"):
        line += f"; {', '.join(block['released_at_both_units'])} released at both units: both ledgers counted"
    conversion = block.get("group_conversion_heaviest_person")
    if conversion:
        line += (
            f"; for contrast, group privacy of the record-level ε for the heaviest person ({conversion['k']} records): "
            f"ε {conversion['epsilon']:.3g} at δ={conversion['delta']:.2g}"
        )
    return line


def person_canary_of(folder: RunFolder) -> dict[str, dict[str, Any]]:
    """Under privacy.unit person with audit on: per DP architecture, the person canary audit
    (privacy.person_audit) of the largest agencies that trained it (as many as a person may appear
    in, at most 3), with their own rows, units and kept plans, for as many rounds as their person
    ledgers charged; or {"unavailable": why}."""
    import dataclasses

    from clients.person_round import person_view, units_of
    from clients.releases import saved_plan
    from experiments.audit import _agency  # the agency as its ClientApp finds itself
    from federation import architectures
    from privacy.ledger import Ledger, LedgerError
    from privacy.person_audit import AgencyRows, person_canary_audit

    config = folder.config
    run_id = folder.run_dir.name
    wanted = min(3, config.privacy.person.max_agencies)
    out: dict[str, dict[str, Any]] = {}
    for arch in config.architectures:
        if not architectures.is_record_dp(arch):
            continue
        rows = []
        for index in range(len(folder.federation.agencies)):
            agency = _agency(folder, index)
            plan = saved_plan(agency, run_id, arch)
            try:
                with Ledger.inspect(person_view(agency).ledger) as ledger:
                    charged = {r["round"] for r in ledger.rows() if (r["run_id"], r["architecture"]) == (run_id, arch)}
            except LedgerError:
                charged = set()
            if plan is not None and charged:
                split = folder.splits[agency.name]
                rows.append(AgencyRows(agency.name, split.X_train, split.y_train, units_of(agency), dataclasses.replace(plan, rounds=len(charged))))
        if not rows:
            out[arch] = {"unavailable": f"no agency kept a person-level plan and charged a release for {arch} in run {run_id}"}
            continue
        chosen = sorted(rows, key=lambda r: -len(r.y))[:wanted]
        result = person_canary_audit(chosen, config.audit.canaries, config.privacy.person.max_records, config.seed, hidden=config.task.hidden, lr=config.federation.learning_rate)
        out[arch] = {k: v for k, v in result.items() if k != "tries"}
    return out
