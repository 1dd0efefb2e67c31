"""The harness's person figures for summary.json (`epsilon_by_unit` per DP architecture): each
agency's ledgers and, where its folder has person keys, its heaviest person among its training
records. Read where the harness runs beside the agencies (simulation); nothing here leaves an
agency, and an agency without persons.csv simply gets no person-level contrast figures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from experiments.config import PeelConfig
from experiments.run_folder import RunFolder
from policedata.errors import DataError
from policedata.persons import crime_ids_of_record_keys, has_persons, load_persons
from privacy.person_epsilons import AgencyLedger, HeaviestPerson, epsilon_by_unit, heaviest_person
from privacy.person_unit import person_ledger_path

log = logging.getLogger("peel.run")


def _heaviest(folder: Path, train_keys: Any) -> HeaviestPerson | None:
    if train_keys is None or not has_persons(folder):
        return None
    try:
        table = load_persons(folder)
    except DataError as exc:
        log.warning("no person figures for %s: %s", folder, exc)
        return None
    return heaviest_person(table.for_records(crime_ids_of_record_keys(train_keys)))


def epsilon_by_unit_of(folder: RunFolder) -> dict[str, Any] | None:
    """`epsilon_by_unit` of the run's ledgers, spent to date like `epsilon` (so the same block for
    every DP architecture of the run); None if no agency has charged anything."""
    config = folder.config
    if config.task.name != "outcome":  # a hotspot example is an area-month, not a person's record
        return None
    agencies = [
        AgencyLedger(a["name"], Path(a["ledger"]), _heaviest(Path(a["folder"]), getattr(folder.splits[a["name"]], "train_keys", None)))
        for a in folder.federation.agencies
    ]
    return epsilon_by_unit(config.privacy.unit, agencies, max_agencies=config.privacy.person.max_agencies, accountant=config.privacy.accountant)


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
        return "-" if not x else f"{x['epsilon']:.3g}" + ("" if x["delta"] == block["record"]["delta"] else f" (δ={x['delta']:.2g})")

    across = block.get("person_across_federation") or {}
    line = (
        f"ε by unit ({block['unit']}-level DP, max over agencies, δ={block['record']['delta']:g}): record {figure('record')}, "
        f"person within an agency {figure('person_within_agency')}, person across the federation (≤ {across.get('max_agencies', '?')} agencies) "
        f"{figure('person_across_federation')}"
    )
    conversion = block.get("group_conversion_heaviest_person")
    if conversion:
        line += (
            f"; for contrast, group privacy of the record-level ε for the heaviest person ({conversion['k']} records): "
            f"ε {conversion['epsilon']:.3g} at δ={conversion['delta']:.2g}"
        )
    return line
