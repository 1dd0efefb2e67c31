"""data.source csv: a city's own export mapped onto Peel's records frame, and one-line errors
naming file, row (header = row 1) and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from policedata import checks
from policedata.checks import MAX_LINE_BYTES
from policedata.csv_source import load_csv_source
from policedata.errors import DataError
from policedata.loader import load_street_folder
from policedata.partition import write_agency_folders
from policedata.schema import AGENCY, CRIME_TYPES, DATE, NO_SUSPECT, OUTCOME_CATEGORIES, RECORD_COLUMNS

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "city_csv" / "incidents.csv"
TEMPLATE = yaml.safe_load((REPO / "configs" / "city-csv-template.yaml").read_text(encoding="utf-8"))["data"]
COLUMNS = TEMPLATE["columns"]
VALUES = TEMPLATE["values"]
HEADER = "Incident Number,Report Date,Precinct,Beat,Offense Description,Disposition,Lat,Lon"
SMALL = {"agency": "Precinct", "date": "Report Date", "latitude": "Lat", "longitude": "Lon", "area": "Beat",
         "category": "Offense Description", "outcome": "Disposition", "crime_id": "Incident Number"}
SMALL_VALUES = {"category": {"ROBBERY": "Robbery", "BURGLARY": "Burglary"}, "outcome": {"CLOSED": NO_SUSPECT, "ARREST": "Awaiting court outcome", "UNFOUNDED": ""}}


def _rows(n: int = 4, start: int = 1) -> list[str]:
    out = []
    for i in range(start, start + n):
        precinct = "North" if i % 2 else "South"
        out.append(f"I{i},03/{10 + i % 18:02d}/2024 11:05 PM,{precinct},B{i % 3},ROBBERY,CLOSED,40.{i:03d},-73.9{i:02d}")
    return out


def _csv(tmp_path: Path, lines: list[str], name: str = "export.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def _load(path: Path, columns: dict | None = None, values: dict | None = None, date_format: str | None = None, delimiter: str = ","):
    return load_csv_source(path, columns or SMALL, SMALL_VALUES if values is None else values, date_format, delimiter)


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        _load(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and len(message) < 1000, message
    return message


def test_fixture_gives_the_street_loaders_frame():
    records, report = load_csv_source(FIXTURE, COLUMNS, VALUES, TEMPLATE["date_format"], ",")
    assert list(records.columns) == [*RECORD_COLUMNS.values(), AGENCY, DATE]  # DATE: a date column is mapped
    assert records[DATE].tolist() == pd.to_datetime(pd.read_csv(FIXTURE, dtype=str)["Report Date"], format="%m/%d/%Y %I:%M %p").dt.strftime("%Y-%m-%dT%H:%M").tolist()
    assert records["latitude"].dtype == np.float64 and records["longitude"].dtype == np.float64
    assert all(pd.api.types.is_string_dtype(records[c]) for c in records.columns if c not in ("longitude", "latitude"))
    raw = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)
    assert len(records) == len(raw) == report.rows
    assert records["crime_id"].tolist() == raw["Incident Number"].tolist()
    assert records[AGENCY].tolist() == raw["Precinct"].tolist() == records["falls_within"].tolist()
    assert records["lsoa_code"].tolist() == raw["Beat"].tolist()
    assert records["month"].tolist() == pd.to_datetime(raw["Report Date"], format="%m/%d/%Y %I:%M %p").dt.strftime("%Y-%m").tolist()
    # mapped categories and outcomes land on Peel's vocabularies; the unmapped one is kept
    assert set(records["crime_type"]) - set(CRIME_TYPES) == {"THEFT OF SERVICES"}
    assert set(records["outcome"]) <= {*OUTCOME_CATEGORIES, ""}
    assert (records["outcome"] == "").sum() == (raw["Disposition"] == "UNFOUNDED").sum() == report.rows_no_outcome > 0
    assert report.unknown_categories == {"THEFT OF SERVICES": int((raw["Offense Description"] == "THEFT OF SERVICES").sum())}
    assert report.rows_unknown_crime_type == sum(report.unknown_categories.values())
    no_location = raw["Lat"] == ""
    assert no_location.any() and records["latitude"].isna().tolist() == no_location.tolist()
    assert report.rows_no_location == int(no_location.sum())
    assert report.per_agency == raw["Precinct"].value_counts().sort_index().to_dict()
    assert any("THEFT OF SERVICES" in line for line in report.lines())


def test_inferred_date_format_matches_the_given_one():
    given, _ = load_csv_source(FIXTURE, COLUMNS, VALUES, TEMPLATE["date_format"], ",")
    inferred, report = load_csv_source(FIXTURE, COLUMNS, VALUES, None, ",")
    assert report.date_format == "%m/%d/%Y %I:%M %p"
    pd.testing.assert_frame_equal(given, inferred)


def test_partitioned_folders_reload_as_the_same_records(tmp_path):
    records, _ = load_csv_source(FIXTURE, COLUMNS, VALUES, None, ",")
    written = write_agency_folders(records, tmp_path / "agencies")
    assert [a["name"] for a in written] == sorted(records[AGENCY].unique())
    for agency in written:
        back, _ = load_street_folder(tmp_path / "agencies" / agency["folder"])  # default agency column
        mine = records[records[AGENCY] == agency["name"]]
        assert set(back[AGENCY]) == {agency["name"]} and len(back) == len(mine)
        key = ["crime_id", "month", "crime_type", "outcome", "lsoa_code"]
        pd.testing.assert_frame_equal(back.sort_values("crime_id")[key].reset_index(drop=True), mine.sort_values("crime_id")[key].reset_index(drop=True))
        assert np.allclose(back.sort_values("crime_id")["latitude"], mine.sort_values("crime_id")["latitude"], equal_nan=True)


def test_month_column_value_maps_blank_lines_bom_and_spaces(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(
        "\ufeffid;month;force;type;result\n"
        " a1 ; 2024-01 ;PCT-N; Robbery ;CLOSED\n"
        "\n"
        "a2;2024-02;PCT-N;Graffiti;\n"
        ";;;;\n"
        "a3;2024-02;PCT-S;ROBBERY;ARREST\n"
        "a4;2024-03;PCT-S;ROBBERY;ARREST\n\n".encode("utf-8")
    )
    columns = {"agency": "force", "month": "month", "category": "type", "outcome": "result", "crime_id": "id"}
    values = {"agency": {"PCT-N": "North", "PCT-S": "South"}, **SMALL_VALUES}
    records, report = load_csv_source(path, columns, values, None, ";")
    assert records["crime_id"].tolist() == ["a1", "a2", "a3", "a4"]
    assert records[AGENCY].tolist() == ["North", "North", "South", "South"]
    assert records["crime_type"].tolist() == ["Robbery", "Graffiti", "Robbery", "Robbery"]
    assert records["outcome"].tolist() == [NO_SUSPECT, "", "Awaiting court outcome", "Awaiting court outcome"]
    assert records["latitude"].isna().all() and report.rows_no_location == 4
    assert report.blank_rows == 3 and report.unknown_categories == {"Graffiti": 1}
    # a bad cell after the blank lines is still named by its spreadsheet row
    path.write_text("id;month;force;type;result\na1;2024-01;N;Robbery;\n\n;;;;\na2;2024-13;N;Robbery;\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.csv: row 5, column 'month' \(data\.columns\.month\): '2024-13' is not a month"):
        load_csv_source(path, columns, {}, None, ";")


def test_quoted_line_breaks_keep_spreadsheet_rows(tmp_path):
    lines = _rows(3)
    lines.insert(1, 'I9,03/20/2024 11:05 PM,North,B1,"ROBBERY",CLOSED,40.1,"-73.9"')
    lines.insert(1, 'I8,"03/21/2024 11:05 PM",South,"B1\nnear the\npark",ROBBERY,CLOSED,40.1,-73.9')
    lines.append("I4,03/22/2024 11:05 PM,North,B1,ROBBERY,CLOSED,95.0,-73.9")
    message = _error(_csv(tmp_path, lines))
    assert "row 7, column 'Lat' (data.columns.latitude): latitude '95.0' is out of range [-90, 90]" in message


def test_day_first_dates_are_inferred_and_ambiguity_is_refused(tmp_path):
    dates = ["03/01/2024 10:00", "25/01/2024 10:00", "14/02/2024 10:00", "01/03/2024 10:00"]
    lines = [f"I{i},{d},North,B1,ROBBERY,CLOSED,40.1,-73.9" for i, d in enumerate(dates)]
    records, report = _load(_csv(tmp_path, lines))
    assert report.date_format == "%d/%m/%Y %H:%M"
    assert records["month"].tolist() == ["2024-01", "2024-01", "2024-02", "2024-03"]
    ambiguous = [f"I{i},0{i + 1}/03/2024,North,B1,ROBBERY,CLOSED,40.1,-73.9" for i in range(4)]
    message = _error(_csv(tmp_path, ambiguous))
    assert "row 2, column 'Report Date'" in message and "no date in the column decides" in message and "data.date_format" in message
    # the given format settles it
    records, _ = _load(_csv(tmp_path, ambiguous), date_format="%d/%m/%Y")
    assert set(records["month"]) == {"2024-03"}


def test_mixed_month_first_and_day_first_is_refused(tmp_path):
    dates = ["03/14/2024", "03/15/2024", "03/16/2024", "16/03/2024", "03/17/2024"]
    lines = [f"I{i},{d},North,B1,ROBBERY,CLOSED,40.1,-73.9" for i, d in enumerate(dates)]
    message = _error(_csv(tmp_path, lines))
    assert "row 5, column 'Report Date'" in message and "'16/03/2024'" in message
    assert "row 2 ('03/14/2024')" in message and "mixes date layouts" in message


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r[:2] + ["I9,not a date,North,B1,ROBBERY,CLOSED,40.1,-73.9"] + r[2:], "row 4, column 'Report Date' (data.columns.date): 'not a date' does not parse as a date"),
        (lambda r: r[:1] + ["I9,,North,B1,ROBBERY,CLOSED,40.1,-73.9"] + r[1:], "row 3, column 'Report Date' (data.columns.date): date is empty"),
        (lambda r: r + ["I9,03/14/2024 11:05 PM,North,B1,ROBBERY,CLOSED,40.1,-273.9"], "row 6, column 'Lon' (data.columns.longitude): longitude '-273.9' is out of range [-180, 180]"),
        (lambda r: r + ["I9,03/14/2024 11:05 PM,North,B1,ROBBERY,CLOSED,forty,-73.9"], "row 6, column 'Lat' (data.columns.latitude): 'forty' is not a number"),
        (lambda r: r + ["I9,03/14/2024 11:05 PM,,B1,ROBBERY,CLOSED,40.1,-73.9"], "row 6, column 'Precinct' (data.columns.agency): agency is empty"),
        (lambda r: r + ["I9,03/14/2024 11:05 PM,East,B1,ROBBERY,CLOSED,40.1,-73.9"], "row 6, column 'Precinct' (data.columns.agency): agency 'East' has only 1 record"),
        (lambda r: r + ["I2,03/14/2024 11:05 PM,North,B1,ROBBERY,CLOSED,40.1,-73.9"], "row 6, column 'Incident Number' (data.columns.crime_id): crime id 'I2' also appears on row 3"),
        (lambda r: r + ["I9,03/14/2024 11:05 PM,North,B1,ROBBERY,PENDING,40.1,-73.9"], "row 6, column 'Disposition' (data.columns.outcome): 'PENDING' is not a Peel outcome category (1 such value: 'PENDING'); add them to data.values.outcome"),
        (lambda r: r + ["I9,03/14/2024 11:05 PM,North,B1,ROBBERY,CLOSED,40.1,-73.9,extra"], "cannot be read as CSV with delimiter ',' (Expected 8 fields in line 6, saw 9)"),
    ],
)
def test_bad_cells_name_file_row_and_column(tmp_path, mutate, expected):
    path = _csv(tmp_path, mutate(_rows(4)))
    message = _error(path)
    assert message.startswith(f"{path}: ") and expected in message, message


def test_a_given_date_format_that_does_not_match(tmp_path):
    message = _error(_csv(tmp_path, _rows(4)), date_format="%Y-%m-%d")
    assert "row 2, column 'Report Date' (data.columns.date): '03/11/2024 11:05 PM' does not match data.date_format '%Y-%m-%d'" in message


def test_structure_errors(tmp_path):
    message = _error(_csv(tmp_path, _rows(4), header=HEADER.replace("Precinct", "District")))
    assert "row 1 (header): no column 'Precinct' (data.columns.agency); the columns are 'Incident Number', 'Report Date', 'District'" in message
    semicolons = _csv(tmp_path, [r.replace(",", ";") for r in _rows(4)], header=HEADER.replace(",", ";"))
    message = _error(semicolons)
    assert "row 1 (header) is a single column" in message and "it seems to use ';' as delimiter, not ',': set data.delimiter" in message
    assert _load(semicolons, delimiter=";")[1].rows == 4
    (tmp_path / "empty.csv").write_bytes(b"")
    assert "the file is empty" in _error(tmp_path / "empty.csv")
    assert "no records below the header (row 1)" in _error(_csv(tmp_path, [], name="header-only.csv"))
    assert "no such file" in _error(tmp_path / "missing.csv")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes((HEADER + "\n" + _rows(1)[0] + "\nI2,03/14/2024 11:05 PM,Caf\xe9,B1,ROBBERY,CLOSED,40.1,-73.9\n").encode("latin-1"))
    message = _error(latin1)
    assert "line 3, byte 27 of the line (byte 170 of the file)" in message and "not UTF-8 text" in message and "0xe9" in message


def test_a_huge_line_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HEADER + "\n" + "\n".join(_rows(3)) + "\n")
        fh.write("I9,03/14/2024 11:05 PM,North,B1,ROBBERY," + "x" * (3 * MAX_LINE_BYTES) + ",40.1,-73.9\n")
    message = _error(path)
    assert "line 5 is 3.1 MB long; a line may be at most 1.0 MB" in message and "xxx" not in message


def test_long_values_are_cut_short_in_messages(tmp_path):
    message = _error(_csv(tmp_path, _rows(4) + ["I9,03/14/2024 11:05 PM,North,B1,ROBBERY," + "Z" * 5000 + ",40.1,-73.9"]))
    assert "ZZZ…'" in message and len(message) < 400


def test_config_level_mistakes(tmp_path):
    path = _csv(tmp_path, _rows(4))
    assert "data.values.category: 'ROBBERY' maps to 'Robbery!'" in _error(path, values={"category": {"ROBBERY": "Robbery!"}})
    assert "data.values.outcome: 'CLOSED' maps to 'Closed'" in _error(path, values={"outcome": {"CLOSED": "Closed"}})
    assert "data.values: 'date' cannot be mapped" in _error(path, values={"date": {"x": "y"}})
    assert "data.columns: give exactly one of date" in _error(path, columns={**SMALL, "month": "Report Date"})
    assert "data.columns: give both latitude and longitude" in _error(path, columns={**SMALL, "longitude": None})
    assert "data.columns: unknown field 'precinct'" in _error(path, columns={**SMALL, "precinct": "Precinct"})
    assert "data.delimiter" in _error(path, delimiter=";;")


def test_rows_without_ids_get_stable_unique_hashes(tmp_path):
    lines = _rows(4)
    lines.append(lines[-1])  # the same incident row twice
    columns = {**SMALL, "crime_id": None}
    path = _csv(tmp_path, [line.split(",", 1)[1] for line in lines], header=HEADER.split(",", 1)[1])
    first, report = _load(path, columns=columns)
    again, _ = _load(path, columns=columns)
    assert first["crime_id"].tolist() == again["crime_id"].tolist()
    ids = first["crime_id"].tolist()
    assert len(set(ids)) == 5 and ids[4] == ids[3] + "-2" and all(i.startswith("row-") for i in ids)
    assert report.rows_hashed_id == 5
    # reordering distinct rows keeps each row's id
    order = [3, 1, 0, 2]
    shuffled = _csv(tmp_path, [lines[k].split(",", 1)[1] for k in order], name="s.csv", header=HEADER.split(",", 1)[1])
    moved, _ = _load(shuffled, columns=columns)
    assert moved["crime_id"].tolist() == [ids[k] for k in order]


# ---- policedata.checks: the shared checks the street loader can use too


@pytest.mark.parametrize("chunk", [7, 1 << 24])
def test_file_line_check_finds_the_long_line_across_chunks(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(checks, "_CHUNK", chunk)
    path = tmp_path / "f.csv"
    for lines, expected in ((["ab", "abcdefghij", "x"], (2, 10)), (["ab", "cd"], None), (["a" * 20], (1, 20)),
                            (["abcde", "abcdef"], (2, 6)), (["abcde"], None), (["ab", "cd", "e" * 17], (3, 17))):
        for end in ("\n", ""):
            path.write_bytes(("\n".join(lines) + end).encode())
            for check in (lambda: checks.check_file_lines(path, 5), lambda: checks.check_line_lengths(path.read_bytes(), path, 5)):
                if expected is None:
                    check()
                    continue
                with pytest.raises(DataError, match=rf"f\.csv: line {expected[0]} is 0\.0 MB long"):
                    check()
    path.write_bytes(b"a,b\n" + b"x" * (2 * MAX_LINE_BYTES) + b"\nc,d\n")
    with pytest.raises(DataError, match=r"line 2 is 2\.1 MB long; a line may be at most 1\.0 MB"):
        checks.check_file_lines(path)


def test_delimiter_hint_unique_ids_and_agency_sizes(tmp_path):
    assert checks.delimiter_hint("a;b;c") == "; it seems to use ';' as delimiter, not ','"
    assert checks.delimiter_hint("a\tb|c\td") == "; it seems to use \"\\t\" (tab) as delimiter, not ','"
    assert checks.delimiter_hint("just one column") == ""
    files = [tmp_path / "1.csv", tmp_path / "2.csv"]
    frames = [pd.DataFrame({"crime_id": ["a", "", "b"]}), pd.DataFrame({"crime_id": ["", "c", "b"]})]
    with pytest.raises(DataError, match=r"2\.csv: line 4: Crime ID 'b' also appears at .*1\.csv: line 4; Crime IDs must be unique"):
        checks.check_unique_crime_ids(frames, files)
    checks.check_unique_crime_ids([frames[0], pd.DataFrame({"crime_id": ["", "c"]})], files)  # empty IDs repeat freely
    checks.require_trainable_agencies({"A": 2, "B": 10}, "download")
    with pytest.raises(DataError, match=r"^download: agency 'B' has only 1 record: an agency needs records to train on and to test on"):
        checks.require_trainable_agencies({"A": 2, "B": 1}, "download")
    assert checks.shorten("x" * 100).endswith("…'") and len(checks.shorten("x" * 100)) == 63


@pytest.mark.parametrize(
    "dates, fmt, months",
    [
        (["2024-03-14T23:05:00.000", "2023-12-31T12:00:00.000"], "%Y-%m-%dT%H:%M:%S.%f", ["2024-03", "2023-12"]),
        (["3/4/2024 1:05:00 AM", "12/25/2023 11:59:00 PM", "1/13/2024 9:00:00 AM"], "%m/%d/%Y %I:%M:%S %p", ["2024-03", "2023-12", "2024-01"]),
        (["March 14, 2024", "January 2, 2024"], "%B %d, %Y", ["2024-03", "2024-01"]),
        (["14-Mar-2024", "02-Jan-2024"], "%d-%b-%Y", ["2024-03", "2024-01"]),
        # daylight saving changes the offset; the month is the one on the record's own clock
        (["2024-03-31 23:05:00-05:00", "2024-04-01 01:00:00-04:00", "2024-04-30 23:30:00-04:00"], "%Y-%m-%d %H:%M:%S%z", ["2024-03", "2024-04", "2024-04"]),
    ],
)
def test_common_date_layouts_are_inferred(tmp_path, dates, fmt, months):
    lines = [f'I{i},"{d}",North,B1,ROBBERY,CLOSED,40.1,-73.9' for i, d in enumerate(dates)]
    records, report = _load(_csv(tmp_path, lines))
    assert report.date_format == fmt and records["month"].tolist() == months
