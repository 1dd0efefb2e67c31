"""Reading data.police.uk street files (real or synthetic) and the public areas table.

Every problem becomes a one-line `DataError` naming the file (and line) so a person can fix it.
Line numbers count the header as line 1, as an editor shows them.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .checks import (
    check_file_lines,
    check_regular_file,
    check_unique_crime_ids,
    delimiter_hint,
    implausible_month,
    latest_month,
    shorten,
)
from .errors import DataError
from .schema import AGENCY, AREA_COLUMNS, CRIME_TYPES, DATE, DATE_COLUMN, MONTH_PATTERN, RECORD_COLUMNS, STREET_COLUMNS

STREET_FILE_GLOB = "*-street.csv"


# Why a row's agency could not be derived (data.agency): such rows are set aside and counted
# (data.agency.unmatched: drop), or stop the load (error). Real data.police.uk downloads hold both:
# rows in LSOAs of neighbouring forces' districts, and rows with no location (no LSOA at all).
SET_ASIDE_REASONS: dict[str, str] = {
    "empty": "the agency column is empty",
    "no_match": "the agency column does not match data.agency.pattern (or its capture is empty)",
}
UNMATCHED_CHOICES = ("drop", "error")


@dataclass
class LoadReport:
    files: int
    rows: int
    rows_no_outcome: int  # empty "Last outcome category" (anti-social behaviour etc.); kept
    rows_no_location: int  # no coordinates; kept
    rows_unknown_crime_type: int  # not one of schema.CRIME_TYPES; kept
    per_agency: dict[str, int] = field(default_factory=dict)
    # Rows whose agency could not be derived, left out of `rows` (reason -> rows), with the first
    # value seen per reason and the counts per source file (relative to the folder read).
    set_aside: dict[str, int] = field(default_factory=dict)
    set_aside_examples: dict[str, str] = field(default_factory=dict)
    set_aside_by_file: dict[str, dict[str, int]] = field(default_factory=dict)
    agency_column: str = ""

    def set_aside_lines(self) -> list[str]:
        """One line per reason: how many rows were set aside, why, and an example value."""
        out = []
        for reason, n in self.set_aside.items():
            example = self.set_aside_examples.get(reason, "")
            why = SET_ASIDE_REASONS.get(reason, reason).replace("the agency column", f"'{self.agency_column}'")
            shown = "" if example.strip() == "" else f", e.g. {shorten(example)}"
            out.append(f"{n:,} records set aside ({reason}): {why}{shown}")
        return out

    def lines(self) -> list[str]:
        """A human-readable summary, one string per line."""
        return [
            f"{self.files:,} files, {self.rows:,} records",
            *self.set_aside_lines(),
            f"{self.rows_no_outcome:,} records without an outcome (kept)",
            f"{self.rows_no_location:,} records without a location (kept)",
            f"{self.rows_unknown_crime_type:,} records with an unknown crime type (kept)",
            *(f"{name}: {n:,} records" for name, n in self.per_agency.items()),
        ]


def load_street_folder(
    path: Path,
    agency_column: str = "Falls within",
    agency_pattern: str | None = None,
    unmatched: str = "drop",
) -> tuple[pd.DataFrame, LoadReport]:
    """Read every ``*-street.csv`` below `path` (any depth, sorted) into one frame.

    Columns: the values of `schema.RECORD_COLUMNS` (text as str with "" for missing; longitude
    and latitude as float with NaN for missing) plus `schema.AGENCY`, taken from `agency_column`,
    or from the one capture group of `agency_pattern` searched in that column.
    Rows whose agency cannot be derived (empty value, no match) are left out and counted in the
    report's `set_aside` (`unmatched="drop"`), or stop the load with a DataError ("error").
    """
    path = Path(path)
    if unmatched not in UNMATCHED_CHOICES:
        raise DataError(f"data.agency.unmatched: {unmatched!r} must be one of {', '.join(UNMATCHED_CHOICES)}")
    if agency_column not in STREET_COLUMNS:
        allowed = ", ".join(f"'{c}'" for c in STREET_COLUMNS)
        raise DataError(f"agency column '{agency_column}' is not a street column; use one of {allowed}")
    pattern = compile_agency_pattern(agency_pattern)
    if not path.exists():
        raise DataError(f"{path}: no such folder")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (give the folder that holds the YYYY-MM folders)")
    files = find_street_files(path)
    if not files:
        raise DataError(f"{path}: no {STREET_FILE_GLOB} files in this folder or below it")
    for file in files:  # a FIFO, a device or an unreadable file is refused before any file is read
        check_regular_file(file)

    frames: list[pd.DataFrame] = []
    seen: dict[str, Path] = {}  # file digest -> the first file with those bytes
    latest = latest_month()
    for file in files:
        frame, digest = read_street_file(file, agency_column, pattern, latest, unmatched == "error")
        # A month file copied twice (under another name) would count its records twice; rows
        # without a Crime ID (anti-social behaviour) would not show up as repeated IDs.
        if len(frame) and digest in seen:
            raise DataError(f"{file}: the same bytes as {seen[digest]}; a month file present twice would count its records twice (remove one copy)")
        seen.setdefault(digest, file)
        frames.append(frame)
    check_unique_crime_ids(frames, files)  # over every row, so its line numbers stay true
    records = pd.concat(frames, ignore_index=True)
    if DATE in records.columns:  # files without the column: no date and time known
        records[DATE] = records[DATE].fillna("").astype("str")
    set_aside, examples, by_file = _set_aside(frames, files, path)
    records = records[records[_SET_ASIDE] == ""].drop(columns=_SET_ASIDE).reset_index(drop=True)
    if len(records) == 0:
        counts = ", ".join(f"{n:,} {reason}" for reason, n in set_aside.items())
        example = next(iter(examples.values()), "")
        raise DataError(
            f"{path}: no record has an agency: all {counts} set aside by '{agency_column}'"
            f"{' and data.agency.pattern' if pattern is not None else ''} (e.g. {shorten(example)}); "
            "check data.agency.column and data.agency.pattern"
        )
    per_agency = records[AGENCY].value_counts().sort_index()
    report = LoadReport(
        files=len(files),
        rows=len(records),
        rows_no_outcome=int((records["outcome"] == "").sum()),
        rows_no_location=int((records["longitude"].isna() | records["latitude"].isna()).sum()),
        rows_unknown_crime_type=int((~records["crime_type"].isin(CRIME_TYPES)).sum()),
        per_agency={str(k): int(v) for k, v in per_agency.items()},
        set_aside=set_aside,
        set_aside_examples=examples,
        set_aside_by_file=by_file,
        agency_column=agency_column,
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
    frame, _ = _read_csv(path)
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


def find_street_files(root: Path) -> list[Path]:
    """Every ``*-street.csv`` below `root` (any depth, sorted). Symlinked folders are followed,
    never skipped; an unreadable folder, a folder reached twice (a symlink loop, or two links to
    one folder) and a month file present twice (one file name in two places) are DataErrors, so
    no record is lost or counted twice without a word."""
    found: list[Path] = []
    by_name: dict[str, Path] = {}
    visited: dict[tuple[int, int], Path] = {}
    stack = [Path(root)]
    while stack:  # iterative: a deep tree cannot exhaust the recursion limit
        folder = stack.pop()
        try:
            info = os.stat(folder)
            key = (info.st_dev, info.st_ino)
            if key in visited:
                raise DataError(f"{folder}: the same folder as {visited[key]} (through a symlink); its files would be read twice")
            visited[key] = folder
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as err:
            raise DataError(f"{folder}: cannot read this folder ({err.strerror or err}); its records would be missing") from None
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows a symlink
            except OSError as err:
                raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
            if is_dir:
                subfolders.append(path)
            elif entry.name.endswith(STREET_FILE_GLOB[1:]):
                if entry.name in by_name:
                    raise DataError(
                        f"{path}: month file {entry.name!r} is present twice (also {by_name[entry.name]}); "
                        "its records would be counted twice (remove one copy)"
                    )
                by_name[entry.name] = path
                found.append(path)
        stack.extend(reversed(subfolders))  # depth first in name order: the first copy found is the earlier path
    return sorted(found)


def agency_pattern_problem(pattern: str) -> str | None:
    """What is wrong with `pattern` as data.agency.pattern (None: it is usable). Patterns run on
    RE2, whose matching time is linear in the text, so no pattern can hang the loader
    (Python's `re` backtracks: '(a+)+$' on 40 letters takes hours)."""
    try:
        groups = re.compile(pattern).groups
    except (re.error, RecursionError, OverflowError) as err:
        return f"is not a valid regular expression ({str(err)[:200]})"
    if groups != 1:
        return f"must have exactly one capture group (has {groups}), e.g. '^(.*) Police$'"
    try:
        _re2_compile(pattern)
    except Exception as err:  # noqa: BLE001 - re2's error type differs across versions
        reason = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        return (
            f"is not supported by RE2, the linear-time engine Peel matches agency patterns with "
            f"(no look-around or back-references): {reason[:200]}"
        )
    return None


def _re2_compile(pattern: str) -> Any:
    import re2  # google-re2; imported here so loading without a pattern does not need it

    options = re2.Options()
    options.log_errors = False  # RE2 would print its own error to stderr; ours is one line
    return re2.compile(pattern, options)


def compile_agency_pattern(pattern: str | None) -> Any:
    """`pattern` compiled with RE2 (`.search(text)`, `.group(1)` as with `re`), or None."""
    if pattern is None:
        return None
    problem = agency_pattern_problem(pattern)
    if problem:
        raise DataError(f"agency pattern {pattern!r:.200} {problem}")
    return _re2_compile(pattern)


# Column of a file's frame saying why its row was set aside ("" when its agency is known).
_SET_ASIDE = "_set_aside"


def _set_aside(frames: Sequence[pd.DataFrame], files: Sequence[Path], root: Path) -> tuple[dict[str, int], dict[str, str], dict[str, dict[str, int]]]:
    """Rows set aside per reason (all files), the first value seen per reason, and per file."""
    total: dict[str, int] = {}
    examples: dict[str, str] = {}
    by_file: dict[str, dict[str, int]] = {}
    for frame, file in zip(frames, files, strict=True):
        reasons = frame[_SET_ASIDE]
        counts = reasons[reasons != ""].value_counts()
        if counts.empty:
            continue
        try:
            name = str(file.relative_to(root))
        except ValueError:
            name = str(file)
        by_file[name] = {}
        for reason in SET_ASIDE_REASONS:  # fixed order: the same report for the same data
            if reason in counts.index:
                n = int(counts[reason])
                by_file[name][reason] = n
                total[reason] = total.get(reason, 0) + n
                if reason not in examples:
                    examples[reason] = str(frame.attrs["set_aside_values"][reason])
    return total, examples, by_file


def read_street_file(file: Path, agency_column: str, pattern: Any, latest: str, strict: bool = False) -> tuple[pd.DataFrame, str]:
    """One street file's records (with `_SET_ASIDE`: why a row has no agency, "" if it has
    one), and the SHA-256 of its bytes. `strict`: a row without an agency is a DataError."""
    frame, digest = _read_csv(file)
    require_columns(frame, STREET_COLUMNS, file)
    months = frame["Month"]
    bad_months = [m for m in months.unique() if not re.fullmatch(MONTH_PATTERN, m)]
    _fail_at(months.isin(bad_months), file, lambda i: f"Month '{months.iloc[i]}' is not YYYY-MM")
    # A far-future or ancient month (a typo) would move every agency's train/test split.
    odd = {m: why for m in months.unique() if (why := implausible_month(m, latest))}
    _fail_at(months.isin(list(odd)), file, lambda i: f"Month '{months.iloc[i]}' {odd[months.iloc[i]]}")
    agency, reasons = _agencies(frame[agency_column], agency_column, pattern, file, strict)
    records = frame[list(STREET_COLUMNS)].rename(columns=RECORD_COLUMNS)
    if DATE_COLUMN in frame.columns:  # Peel's own column (a city's dates and times), when written
        records[DATE] = frame[DATE_COLUMN]
    for column, limit in (("Longitude", 180), ("Latitude", 90)):
        values = _numbers(frame[column], column, file, -limit, limit, allow_missing=True)
        records[RECORD_COLUMNS[column]] = values
    records[AGENCY] = agency
    records[_SET_ASIDE] = reasons
    # The first value set aside per reason, for the report's example (a public place name).
    values = frame[agency_column]
    records.attrs["set_aside_values"] = {r: values[reasons == r].iloc[0] for r in SET_ASIDE_REASONS if (reasons == r).any()}
    return records, digest


def _read_csv(file: Path) -> tuple[pd.DataFrame, str]:
    """All cells as str, "" for empty, and the SHA-256 of the file; parse failures become
    DataError."""
    check_regular_file(file)
    digest = check_file_lines(file)  # a line of megabytes is refused before pandas holds it in memory
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
    return frame, digest


def require_columns(frame: pd.DataFrame, required: Sequence[str], file: Path) -> None:
    """DataError listing the columns of `required` that `frame` (read from `file`) lacks."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        hint = delimiter_hint(str(frame.columns[0])) if len(frame.columns) == 1 else ""
        raise DataError(f"{file}: missing columns {', '.join(repr(c) for c in missing)}{hint}")


def _fail_at(bad: pd.Series | np.ndarray, file: Path, describe: Callable[[int], str]) -> None:
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
    return np.asarray(values)


def _agencies(values: pd.Series, column: str, pattern: Any, file: Path, strict: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The agency of each row: the column's value, or the pattern's capture group in it, in
    Unicode NFC, so "Café" typed as one code point or as "e" + accent is one agency (one budget);
    and why a row has none ("empty", "no_match"; "" when it has one). `strict`: a row without an
    agency is a DataError naming its line. Maps the few distinct values instead of every row."""
    uniques = values.unique()
    names: dict[str, str | None] = {}
    if pattern is None:
        names = {v: unicodedata.normalize("NFC", v).strip() for v in uniques}
    else:
        for v in uniques:
            match = pattern.search(unicodedata.normalize("NFC", v))
            names[v] = match.group(1).strip() if match and match.group(1) is not None else None
    agency = values.map(names)
    empty_value = (values.str.strip() == "").to_numpy(dtype=bool)
    no_agency = agency.isna().to_numpy(dtype=bool) | (agency == "").to_numpy(dtype=bool)
    if strict:
        if pattern is not None:
            _fail_at(
                agency.isna(),
                file,
                lambda i: f"'{column}' value {shorten(values.iloc[i])} does not match the agency pattern '{pattern.pattern[:200]}'",
            )
        _fail_at(agency == "", file, lambda i: f"empty agency ('{column}' is {shorten(values.iloc[i])})")
    reasons = np.where(no_agency, np.where(empty_value, "empty", "no_match"), "").astype(object)
    return agency.fillna("").to_numpy(dtype=object), reasons
