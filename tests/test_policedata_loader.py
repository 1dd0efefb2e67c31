"""The street-folder and areas loaders: normalised frames, reports, and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from policedata.errors import DataError
from policedata.loader import load_areas, load_street_folder
from policedata.schema import AGENCY, AREA_COLUMNS, NO_SUSPECT, RECORD_COLUMNS, STREET_COLUMNS

HEADER = ",".join(STREET_COLUMNS)
ROWS = [
    "a1,2023-01,Ashmoor Police,Ashmoor Police,-1.500000,52.100000,On or near Mill Lane,E01000001,Ashmoor 001A,Burglary,"
    + NO_SUSPECT + ",",
    ",2023-01,Ashmoor Police,Ashmoor Police,-1.600000,52.200000,On or near Park Road,E01000002,Ashmoor 001B,Anti-social behaviour,,",
    "a3,2023-01,Ashmoor Police,Ashmoor Police,,,No Location,,,Drugs,Local resolution,",
    "a4,2023-01,Ashmoor Police,Ashmoor Police,-1.700000,52.300000,On or near Oak Close,E01000003,Ashmoor 002A,Jaywalking,Under investigation,",
]


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _street(folder: Path, rows: list[str], name: str = "2023-01/2023-01-ashmoor-street.csv", header: str = HEADER) -> Path:
    return _write(folder / name, "\n".join([header, *rows]) + "\n")


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        load_street_folder(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_reads_and_normalises(tmp_path):
    _street(tmp_path, ROWS)
    _street(tmp_path, [ROWS[0].replace("a1,2023-01", "b1,2023-02")], name="2023-02/nested/2023-02-ashmoor-street.csv")
    _write(tmp_path / "2023-01" / "2023-01-ashmoor-outcomes.csv", "not read")  # other layouts are ignored
    records, report = load_street_folder(tmp_path)
    assert list(records.columns) == [*RECORD_COLUMNS.values(), AGENCY]
    assert records["crime_id"].tolist() == ["a1", "", "a3", "a4", "b1"]  # sorted by path, file order kept
    assert records["longitude"].dtype == np.float64 and np.isnan(records.loc[2, "latitude"])
    assert records.loc[0, "latitude"] == pytest.approx(52.1)
    assert all(pd.api.types.is_string_dtype(records[c]) for c in records.columns if c not in ("longitude", "latitude"))
    assert records.loc[1, "outcome"] == "" and records.loc[0, "context"] == ""
    assert (report.files, report.rows) == (2, 5)
    assert (report.rows_no_outcome, report.rows_no_location, report.rows_unknown_crime_type) == (1, 1, 1)
    assert report.per_agency == {"Ashmoor Police": 5}
    lines = report.lines()
    assert lines[0] == "2 files, 5 records" and "Ashmoor Police: 5 records" in lines


def test_agency_from_another_column_and_pattern(tmp_path):
    rows = [ROWS[0].replace("Ashmoor Police,Ashmoor Police", "Ashmoor Police,Fenwick Constabulary"), ROWS[1]]
    _street(tmp_path, rows)
    records, report = load_street_folder(tmp_path, agency_column="Reported by")
    assert set(records[AGENCY]) == {"Ashmoor Police"}
    records, report = load_street_folder(tmp_path, agency_pattern=r"^(\w+) (?:Police|Constabulary)$")
    assert records[AGENCY].tolist() == ["Fenwick", "Ashmoor"]
    assert report.per_agency == {"Ashmoor": 1, "Fenwick": 1}


def test_agency_pattern_errors(tmp_path):
    file = _street(tmp_path, ROWS[:2] + [ROWS[2].replace("Ashmoor Police,Ashmoor Police", "Ashmoor Police,Other Force")])
    message = _error(tmp_path, agency_pattern=r"^(\w+) Police$", unmatched="error")  # default drop: tests/test_set_aside.py
    assert message == f"{file}: line 4: 'Falls within' value 'Other Force' does not match the agency pattern '^(\\w+) Police$'"
    assert "valid regular expression" in _error(tmp_path, agency_pattern="(unclosed")
    assert "exactly one capture group (has 0)" in _error(tmp_path, agency_pattern="Police")
    assert "exactly one capture group (has 2)" in _error(tmp_path, agency_pattern="(A)(B)")
    assert "is not a street column" in _error(tmp_path, agency_column="Force")


def test_empty_agency_is_an_error(tmp_path):
    file = _street(tmp_path, [ROWS[0].replace("Ashmoor Police,Ashmoor Police", "Ashmoor Police,")])
    assert _error(tmp_path, unmatched="error") == f"{file}: line 2: empty agency ('Falls within' is '')"


def test_path_errors(tmp_path):
    missing = tmp_path / "nothing-here"
    assert _error(missing) == f"{missing}: no such folder"
    file = _write(tmp_path / "a.csv", "x")
    assert _error(file).startswith(f"{file}: not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _error(empty) == f"{empty}: no *-street.csv files in this folder or below it"


def test_missing_columns(tmp_path):
    header = ",".join(c for c in STREET_COLUMNS if c not in ("Month", "Crime type"))
    file = _street(tmp_path, [], header=header)
    assert _error(tmp_path) == f"{file}: missing columns 'Month', 'Crime type'"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"\x1f\x8b\x08\x00\xff\xfe\x00\x81binary", "not UTF-8 text"),
        (("\n".join([HEADER, ROWS[0], ROWS[0] + ",extra,fields"]) + "\n").encode(), "cannot be parsed as CSV"),
    ],
)
def test_unparseable_files(tmp_path, content, expected):
    file = _write(tmp_path / "2023-01" / "2023-01-x-street.csv", content)
    message = _error(tmp_path)
    assert message.startswith(f"{file}: ") and expected in message


def test_bad_month(tmp_path):
    file = _street(tmp_path, [ROWS[0], ROWS[1].replace("2023-01", "Jan 2023")])
    assert _error(tmp_path) == f"{file}: line 3: Month 'Jan 2023' is not YYYY-MM"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("52.100000", "91.5", "line 2: Latitude 91.5 is out of range [-90, 90]"),
        ("-1.500000", "-181", "line 2: Longitude -181 is out of range [-180, 180]"),
        ("-1.500000", "west", "line 2: Longitude 'west' is not a number"),
    ],
)
def test_bad_coordinates(tmp_path, old, new, expected):
    file = _street(tmp_path, [ROWS[0].replace(old, new), ROWS[1]])
    assert _error(tmp_path) == f"{file}: {expected}"


def test_blank_coordinates_count_as_missing(tmp_path):
    _street(tmp_path, [ROWS[0].replace("-1.500000,52.100000", " , ")])
    records, report = load_street_folder(tmp_path)
    assert report.rows_no_location == 1 and np.isnan(records.loc[0, "longitude"])


def test_byte_order_mark_is_accepted(tmp_path):
    _write(tmp_path / "2023-01" / "2023-01-x-street.csv", b"\xef\xbb\xbf" + "\n".join([HEADER, ROWS[0]]).encode())
    records, _ = load_street_folder(tmp_path)
    assert records.loc[0, "crime_id"] == "a1"


# --- areas ------------------------------------------------------------------------------------------

AREAS_HEADER = ",".join([*AREA_COLUMNS, "agency"])
AREA_ROWS = [
    "E01000001,Ashmoor 001A,-1.5,52.1,0.25,0.9,1500,Ashmoor Police",
    "E01000002,Ashmoor 001B,-1.6,52.2,0.75,0.0,1700,Ashmoor Police",
]


def _areas_error(path: Path) -> str:
    with pytest.raises(DataError) as err:
        load_areas(path)
    return str(err.value)


def test_load_areas(tmp_path):
    file = _write(tmp_path / "areas.csv", "\n".join([AREAS_HEADER, *AREA_ROWS]) + "\n")
    areas = load_areas(file)
    assert list(areas.columns) == [*AREA_COLUMNS, "agency"]
    assert areas["deprivation"].tolist() == [0.25, 0.75] and areas["population"].dtype == np.float64
    assert areas["agency"].tolist() == ["Ashmoor Police"] * 2


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([AREA_ROWS[0], AREA_ROWS[0]], "line 3: LSOA code 'E01000001' appears more than once"),
        ([AREA_ROWS[0].replace("0.25", "1.5")], "line 2: deprivation 1.5 is out of range [0, 1]"),
        ([AREA_ROWS[0].replace(",1500,", ",,")], "line 2: population is empty"),
        ([AREA_ROWS[0].replace("E01000001", "")], "line 2: empty LSOA code"),
    ],
)
def test_load_areas_errors(tmp_path, rows, expected):
    file = _write(tmp_path / "areas.csv", "\n".join([AREAS_HEADER, *rows]) + "\n")
    assert _areas_error(file) == f"{file}: {expected}"


def test_load_areas_missing_file_and_columns(tmp_path):
    assert _areas_error(tmp_path / "none.csv") == f"{tmp_path / 'none.csv'}: no such file"
    file = _write(tmp_path / "areas.csv", "LSOA code,population\nE01000001,1500\n")
    assert re.fullmatch(
        re.escape(f"{file}: missing columns 'LSOA name', 'Longitude', 'Latitude', 'deprivation', 'night_economy'"),
        _areas_error(file),
    )
