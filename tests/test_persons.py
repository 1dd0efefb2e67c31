"""policedata.persons: keys, persons.csv round trip, alignment with records, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from policedata.errors import DataError
from policedata.files import write_federation_key, write_persons
from policedata.persons import (
    FEDERATION_KEY_FILE,
    NO_PERSON,
    PERSONS_FILE,
    PersonTable,
    crime_ids_of_record_keys,
    has_persons,
    load_persons,
    new_federation_key,
    person_key,
    person_keys,
    read_federation_key,
)

SECRET = b"\x01" * 32


def _table() -> PersonTable:
    return PersonTable(
        crime_id=np.array(["c1", "c2", "c2", "c3", "c4"]),
        role=np.array(["victim", "victim", "suspect", "suspect", "victim"]),
        person=np.array(["k-anne", "k-bob", "k-anne", "k-carl", "k-anne"]),
    )


def test_keys_link_with_one_secret_and_differ_with_another():
    assert person_key(SECRET, "person-1") == person_key(SECRET, "person-1")
    assert person_key(SECRET, "person-1") != person_key(SECRET, "person-2")
    assert person_key(SECRET, "person-1") != person_key(b"\x02" * 32, "person-1")
    assert len(person_key(SECRET, "x")) == 32  # 128 bits in hex
    ids = ["b", "a", "b", "person-7"]
    assert list(person_keys(SECRET, ids)) == [person_key(SECRET, i) for i in ids]
    assert new_federation_key() != new_federation_key() and len(new_federation_key()) == 32


def test_persons_csv_round_trips(tmp_path):
    table = _table()
    write_persons(table, tmp_path)
    assert has_persons(tmp_path)
    back = load_persons(tmp_path)
    for column in ("crime_id", "role", "person"):
        assert list(getattr(back, column)) == list(getattr(table, column))
    assert (tmp_path / PERSONS_FILE).read_text().splitlines()[0] == "Crime ID,role,person"


def test_for_records_aligns_by_crime_id():
    persons = _table().for_records(["c4", "", "c2", "unknown", "c1", "c3"])
    assert list(persons.keys) == ["k-anne", "k-bob", "k-carl"]
    anne, bob, carl = 0, 1, 2
    assert list(persons.victim) == [anne, NO_PERSON, bob, NO_PERSON, anne, NO_PERSON]
    assert list(persons.suspect) == [NO_PERSON, NO_PERSON, anne, NO_PERSON, NO_PERSON, carl]
    assert list(persons.of("suspect")) == list(persons.suspect)
    # Anne: victim twice and suspect once, in three records.
    assert list(persons.records_per_person()) == [3, 1, 1]
    assert list(persons.records_per_person("victim")) == [2, 1, 0]
    with pytest.raises(ValueError, match="role"):
        persons.of("witness")


def test_a_person_both_victim_and_suspect_of_one_record_counts_once():
    table = PersonTable(np.array(["c1", "c1"]), np.array(["victim", "suspect"]), np.array(["k", "k"]))
    assert list(table.for_records(["c1"]).records_per_person()) == [1]


def test_two_people_in_one_role_of_a_record_are_refused():
    table = PersonTable(np.array(["c1", "c1"]), np.array(["victim", "victim"]), np.array(["k", "j"]))
    with pytest.raises(ValueError, match="two victims"):
        table.for_records(["c1"])


def test_crime_ids_of_record_keys():
    assert list(crime_ids_of_record_keys(["id:abc", "rec:ff00", "id:id:x"])) == ["abc", "", "id:x"]


@pytest.mark.parametrize("text, message", [
    ("Crime ID,role\nc1,victim\n", "missing column 'person'"),
    ("Crime ID,role,person\nc1,witness,k\n", "line 2: role 'witness' is not one of victim, suspect"),
    ("Crime ID,role,person\nc1,victim,k\n,victim,k\n", "line 3: empty Crime ID"),
    ("Crime ID,role,person\nc1,victim,\n", "line 2: empty person key"),
    ("Crime ID,role,person\nc1,victim,k\nc1,victim,j\n", "line 3: a second person in the same role"),
])
def test_bad_persons_file_is_one_line(tmp_path, text, message):
    (tmp_path / PERSONS_FILE).write_text(text)
    with pytest.raises(DataError, match=message) as err:
        load_persons(tmp_path)
    assert "\n" not in str(err.value) and PERSONS_FILE in str(err.value)


def test_missing_persons_file(tmp_path):
    assert not has_persons(tmp_path)
    with pytest.raises(DataError, match="no persons file"):
        load_persons(tmp_path)


def test_federation_key_file(tmp_path):
    with pytest.raises(DataError, match="no federation key"):
        read_federation_key(tmp_path)
    write_federation_key(tmp_path, SECRET)
    assert read_federation_key(tmp_path) == SECRET
    assert (tmp_path / FEDERATION_KEY_FILE).stat().st_mode & 0o077 == 0
    (tmp_path / FEDERATION_KEY_FILE).write_text("not hex\n")
    with pytest.raises(DataError, match="64 lowercase hex"):
        read_federation_key(tmp_path)
