"""Per-agency partitioning of pooled records, and the CSV writer it shares with the generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from policedata.errors import DataError
from policedata.files import csv_text, write_street_files
from policedata.loader import load_street_folder
from policedata.partition import slugify, write_agency_folders
from policedata.schema import AGENCY
from policedata.synthetic import SyntheticSpec, generate


@pytest.fixture(scope="module")
def pooled(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("pooled") / "data"
    generate(SyntheticSpec(agencies=4, incidents=8_000, months=3, seed=3), out)
    records, _ = load_street_folder(out / "agencies")
    return records


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def test_round_trip_per_agency(pooled, tmp_path):
    agencies = write_agency_folders(pooled, tmp_path / "parts")
    assert [a["name"] for a in agencies] == sorted(pooled[AGENCY].unique())
    assert sum(a["records"] for a in agencies) == len(pooled)
    for agency in agencies:
        folder = tmp_path / "parts" / agency["folder"]
        assert agency["folder"] == agency["slug"] == slugify(agency["name"])
        for file in folder.rglob("*.csv"):
            month = file.parent.name
            assert file.name == f"{month}-{agency['slug']}-street.csv"
        records, report = load_street_folder(folder)
        assert report.per_agency == {agency["name"]: agency["records"]}
        expected = pooled[pooled[AGENCY] == agency["name"]]
        pd.testing.assert_frame_equal(_sorted(records), _sorted(expected), check_dtype=False)


def test_round_trip_with_extracted_agency(pooled, tmp_path):
    # Real data: the agency may be a pattern's capture; files keep their original columns.
    records, _ = load_street_folder(
        _parts(pooled, tmp_path / "a"), agency_pattern=r"^(\w+) (?:Police|Constabulary)$"
    )
    parts = write_agency_folders(records, tmp_path / "b")
    assert all(p["name"] == p["name"].strip() and " " not in p["name"] for p in parts)
    for part in parts:
        again, _ = load_street_folder(tmp_path / "b" / part["folder"], agency_pattern=r"^(\w+) (?:Police|Constabulary)$")
        assert set(again[AGENCY]) == {part["name"]} and len(again) == part["records"]


def _parts(records: pd.DataFrame, out: Path) -> Path:
    write_agency_folders(records, out)
    return out


def test_refusals(pooled, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(DataError, match="already exists and is not empty"):
        write_agency_folders(pooled, tmp_path / "used")
    with pytest.raises(DataError, match="no 'agency' column"):
        write_agency_folders(pooled.drop(columns=[AGENCY]), tmp_path / "new")
    clash = pooled.head(4).copy()
    clash[AGENCY] = ["Ashmoor Police", "Ashmoor Police", "Ashmoor Constabulary", "Ashmoor Constabulary"]
    with pytest.raises(DataError, match="both map to folder 'ashmoor'"):
        write_agency_folders(clash, tmp_path / "clash")
    bad_month = pooled.head(2).copy()
    bad_month["month"] = "../evil"
    with pytest.raises(DataError, match="Month '../evil' is not YYYY-MM"):
        write_street_files(bad_month, tmp_path / "m", "x")
    with pytest.raises(DataError, match="not filesystem-safe"):
        write_street_files(pooled.head(2), tmp_path / "m", "../x")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Ashmoor Police", "ashmoor"),
        ("Ashmoor Constabulary", "ashmoor"),
        ("Avon and Somerset Constabulary", "avon-and-somerset"),
        ("Metropolitan Police Service", "metropolitan"),
        ("Police Service of Northern Ireland", "northern-ireland"),
        ("City of London Police", "city-of-london"),
        ("Police", "police"),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug


def test_slugify_never_empty():
    assert slugify("???").startswith("agency-") and slugify("???") == slugify("???")
    assert slugify("???") != slugify("!!!")


def test_csv_text_matches_pandas():
    frame = pd.DataFrame({
        "text": ["plain", "a,b", 'say "hi"', None, "two\nlines", ""],
        "x": [1.5, np.nan, -2.25, 3.0, 0.1234567, 1e-9],
        "n": [1, 2, 3, 4, 5, 6],
        "a,b": [True, False, True, False, True, False],
    })
    expected = frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    assert csv_text(frame) == expected
    assert csv_text(frame.iloc[:0]) == frame.iloc[:0].to_csv(index=False, lineterminator="\n")
