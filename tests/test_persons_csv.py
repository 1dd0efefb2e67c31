"""data.source csv with data.columns.person / person_role: raw identities become per-agency
persons.csv keys (one shared secret), never street-file columns or part of hashed record ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.config import ConfigError, validate
from policedata.csv_source import load_csv_source
from policedata.errors import DataError
from policedata.partition import write_agency_folders
from policedata.persons import IDENTITY, IDENTITY_ROLE, load_persons, person_key, read_federation_key
from policedata.schema import NO_SUSPECT

HEADER = "Incident Number,Month,Precinct,Offense,Disposition,Person,Role"
COLUMNS = {"agency": "Precinct", "month": "Month", "category": "Offense", "outcome": "Disposition", "crime_id": "Incident Number"}
PERSON = {"person": "Person", "person_role": "Role"}
VALUES = {"category": {"ROBBERY": "Robbery"}, "outcome": {"CLOSED": NO_SUSPECT, "ARREST": "Awaiting court outcome"}}
ROWS = [
    "I1,2024-01,North,ROBBERY,CLOSED,  Ann  Lee ,Victim",  # spacing and case are normalised
    "I2,2024-02,North,ROBBERY,ARREST,Bob,suspect",
    "I3,2024-02,South,ROBBERY,CLOSED,Ann Lee,victim",  # the same person in another agency
    "I4,2024-03,South,ROBBERY,CLOSED,,",  # no person
]


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "export.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_person_columns_fill_each_agencys_persons_csv(tmp_path):
    records, _ = load_csv_source(_csv(tmp_path, ROWS), {**COLUMNS, **PERSON}, VALUES)
    written = write_agency_folders(records, tmp_path / "agencies")
    folders = {a["name"]: tmp_path / "agencies" / a["folder"] for a in written}
    secret = read_federation_key(folders["North"])
    assert read_federation_key(folders["South"]) == secret
    north, south = load_persons(folders["North"]), load_persons(folders["South"])
    assert list(north.crime_id) == ["I1", "I2"] and list(north.role) == ["victim", "suspect"]
    assert list(south.crime_id) == ["I3"]
    assert north.person[0] == south.person[0] == person_key(secret, "Ann Lee")  # linked across agencies
    # No identity in any street file.
    for file in (tmp_path / "agencies").rglob("*-street.csv"):
        text = file.read_text()
        assert "Ann" not in text and "Bob" not in text


def test_identities_do_not_change_hashed_record_ids(tmp_path):
    rows = ["," + r.split(",", 1)[1] for r in ROWS[:2]]  # no incident number: the id is a hash of the cells
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_person, _ = load_csv_source(_csv(tmp_path / "a", rows), {**COLUMNS, **PERSON}, VALUES)
    without, _ = load_csv_source(_csv(tmp_path / "b", rows), COLUMNS, VALUES)
    assert list(with_person["crime_id"]) == list(without["crime_id"])
    assert IDENTITY not in without.columns and with_person[IDENTITY].iloc[0] == "Ann  Lee"


def test_without_a_role_column_every_person_is_a_victim(tmp_path):
    records, _ = load_csv_source(_csv(tmp_path, ROWS), {**COLUMNS, "person": "Person"}, VALUES)
    assert IDENTITY_ROLE not in records.columns
    write_agency_folders(records, tmp_path / "agencies")
    assert set(np.concatenate([load_persons(f).role for f in (tmp_path / "agencies").iterdir()])) == {"victim"}


def test_a_bad_role_is_one_line_naming_row_and_column(tmp_path):
    path = _csv(tmp_path, [*ROWS, "I5,2024-03,South,ROBBERY,CLOSED,Cy,witness"])
    with pytest.raises(DataError, match=r"row 6, column 'Role' \(data.columns.person_role\): role 'witness' is not one of victim, suspect"):
        load_csv_source(path, {**COLUMNS, **PERSON}, VALUES)


def test_config_accepts_person_columns_and_refuses_a_role_alone(tmp_path):
    path = _csv(tmp_path, ROWS)
    data = {"source": "csv", "path": str(path), "columns": {**COLUMNS, **PERSON}, "values": VALUES}
    config = validate({"data": data}, "c.yaml")
    assert config.data.columns is not None and config.data.columns.person == "Person"
    with pytest.raises(ConfigError, match="person_role: only with person"):
        validate({"data": {**data, "columns": {**COLUMNS, "person_role": "Role"}}}, "c.yaml")
