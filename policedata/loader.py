"""Reading data.police.uk street files (real or synthetic) and the public areas table.

Every problem becomes a one-line `DataError` naming the file (and line) so a person can fix it.
Line numbers count the header as line 1, as an editor shows them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .checks import check_file_lines, check_unique_crime_ids, delimiter_hint
from .errors import DataError
from .schema import AGENCY, AREA_COLUMNS, CRIME_TYPES, MONTH_PATTERN, RECORD_COLUMNS, STREET_COLUMNS

STREET_FILE_GLOB = "*-street.csv"


@dataclass
class LoadReport:
    files: int
    rows: int
    rows_no_outcome: int  # empty "Last outcome category" (anti-social behaviour etc.); kept
    rows_no_location: int  # no coordinates; kept
    rows_unknown_crime_type: int  # not one of schema.CRIME_TYPES; kept
    per_agency: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A human-readable summary, one string per line."""
        return [
            f"{self.files:,} files, {self.rows:,} records",
            f"{self.rows_no_outcome:,} records without an outcome (kept)",
            f"{self.rows_no_location:,} records without a location (kept)",
            f"{self.rows_unknown_crime_type:,} records with an unknown crime type (kept)",
            *(f"{name}: {n:,} records" for name, n in self.per_agency.items()),
        ]


def load_street_folder(
    path: Path, agency_column: str = "Falls within", agency_pattern: str | None = None
) -> tuple[pd.DataFrame, LoadReport]:
    """Read every ``*-street.csv`` below `path` (any depth, sorted) into one frame.

    Columns: the values of `schema.RECORD_COLUMNS` (text as str with "" for missing; longitude
    and latitude as float with NaN for missing) plus `schema.AGENCY`, taken from `agency_column`,
    or from the one capture group of `agency_pattern` searched in that column.
    """
    path = Path(path)
    if agency_column not in STREET_COLUMNS:
        allowed = ", ".join(f"'{c}'" for c in STREET_COLUMNS)
        raise DataError(f"agency column '{agency_column}' is not a street column; use one of {allowed}")
    pattern = _agency_regex(agency_pattern)
    if not path.exists():
        raise DataError(f"{path}: no such folder")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (give the folder that holds the YYYY-MM folders)")
    files = sorted(path.rglob(STREET_FILE_GLOB))
    if not files:
        raise DataError(f"{path}: no {STREET_FILE_GLOB} files in this folder or below it")

    frames = [_read_street_file(f, agency_column, pattern) for f in files]
    check_unique_crime_ids(frames, files)
    records = pd.concat(frames, ignore_index=True)
    per_agency = records[AGENCY].value_counts().sort_index()
    report = LoadReport(
        files=len(files),
        rows=len(records),
        rows_no_outcome=int((records["outcome"] == "").sum()),
        rows_no_location=int((records["longitude"].isna() | records["latitude"].isna()).sum()),
        rows_unknown_crime_type=int((~records["crime_type"].isin(CRIME_TYPES)).sum()),
        per_agency={str(k): int(v) for k, v in per_agency.items()},
    )
    return records, report


def load_areas(path: Path) -> pd.DataFrame:
    """Read a public areas table (`schema.AREA_COLUMNS`, extra columns kept as text).

    Numeric columns come back as float; LSOA codes must be present and unique, coordinates in
    range, deprivation and night_economy in [0, 1], population >= 0.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    frame = _read_csv(path)
    require_columns(frame, AREA_COLUMNS, path)
    codes = frame["LSOA code"]
    _fail_at(codes == "", path, lambda i: "empty LSOA code")
    duplicated = codes.duplicated()
    _fail_at(duplicated, path, lambda i: f"LSOA code '{codes.iloc[i]}' appears more than once")
    limits = {
        "Longitude": (-180, 180),
        "Latitude": (-90, 90),
        "deprivation": (0, 1),
        "night_economy": (0, 1),
        "population": (0, np.inf),
    }
    for column, (low, high) in limits.items():
        frame[column] = _numbers(frame[column], column, path, low, high, allow_missing=False)
    return frame


def _agency_regex(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise DataError(f"agency pattern '{pattern}' is not a valid regular expression: {err}") from None
    if regex.groups != 1:
        raise DataError(
            f"agency pattern '{pattern}' has {regex.groups} capture groups; it needs exactly one,"
            " e.g. '^(.*) Police$'"
        )
    return regex


def _read_street_file(file: Path, agency_column: str, pattern: re.Pattern[str] | None) -> pd.DataFrame:
    frame = _read_csv(file)
    require_columns(frame, STREET_COLUMNS, file)
    months = frame["Month"]
    bad_months = [m for m in months.unique() if not re.fullmatch(MONTH_PATTERN, m)]
    _fail_at(months.isin(bad_months), file, lambda i: f"Month '{months.iloc[i]}' is not YYYY-MM")
    agency = _agencies(frame[agency_column], agency_column, pattern, file)
    records = frame[list(STREET_COLUMNS)].rename(columns=RECORD_COLUMNS)
    for column, limit in (("Longitude", 180), ("Latitude", 90)):
        values = _numbers(frame[column], column, file, -limit, limit, allow_missing=True)
        records[RECORD_COLUMNS[column]] = values
    records[AGENCY] = agency
    return records


def _read_csv(file: Path) -> pd.DataFrame:
    """All cells as str, "" for empty; parse failures become DataError."""
    check_file_lines(file)  # a line of megabytes is refused before pandas holds it in memory
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        reason = f"byte {err.start}: {err.reason}"
        raise DataError(f"{file}: not UTF-8 text ({reason}); is it a CSV file?") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{file}: the file is empty; expected a header line and records") from None
    except (pd.errors.ParserError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{file}: cannot be parsed as CSV ({reason})") from None
    except OSError as err:
        raise DataError(f"{file}: cannot be read ({err.strerror or err})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def require_columns(frame: pd.DataFrame, required: Sequence[str], file: Path) -> None:
    """DataError listing the columns of `required` that `frame` (read from `file`) lacks."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        hint = delimiter_hint(str(frame.columns[0])) if len(frame.columns) == 1 else ""
        raise DataError(f"{file}: missing columns {', '.join(repr(c) for c in missing)}{hint}")


def _fail_at(bad: pd.Series | np.ndarray, file: Path, describe) -> None:
    """Raise for the first True row of `bad`, naming its line (header = line 1)."""
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{file}: line {i + 2}: {describe(i)}")


def _numbers(
    texts: pd.Series, column: str, file: Path, low: float, high: float, allow_missing: bool
) -> np.ndarray:
    """Parse a text column to float (empty -> NaN where allowed) and check its range."""
    empty = (texts == "").to_numpy(dtype=bool, copy=True)
    values = pd.to_numeric(texts.mask(empty), errors="coerce").to_numpy(dtype=np.float64)
    unparsed = np.isnan(values) & ~empty
    if unparsed.any():  # blanks count as empty (to_numeric itself ignores surrounding spaces)
        empty[unparsed] = (texts[unparsed].str.strip() == "").to_numpy()
    if not allow_missing:
        _fail_at(empty, file, lambda i: f"{column} is empty")
    _fail_at(np.isnan(values) & ~empty, file, lambda i: f"{column} '{texts.iloc[i]}' is not a number")
    out_of_range = (values < low) | (values > high)
    _fail_at(out_of_range, file, lambda i: f"{column} {texts.iloc[i]} is out of range [{low:g}, {high:g}]")
    return values


def _agencies(values: pd.Series, column: str, pattern: re.Pattern[str] | None, file: Path) -> np.ndarray:
    """The agency of each row: the column's value, or the pattern's capture group in it. Maps
    the few distinct values instead of every row."""
    uniques = values.unique()
    if pattern is None:
        names = {v: v.strip() for v in uniques}
    else:
        names = {}
        for v in uniques:
            match = pattern.search(v)
            names[v] = match.group(1).strip() if match and match.group(1) is not None else None
        unmatched = values.map(names).isna()
        _fail_at(
            unmatched,
            file,
            lambda i: f"'{column}' value '{values.iloc[i]}' does not match the agency pattern '{pattern.pattern}'",
        )
    agency = values.map(names)
    _fail_at(agency == "", file, lambda i: f"empty agency ('{column}' is '{values.iloc[i]}')")
    return agency.to_numpy(dtype=object)
