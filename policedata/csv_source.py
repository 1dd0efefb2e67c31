"""`data.source: csv` — one incident table in a city's own layout (for example a US police
department's export with a precinct column and free-text dates), mapped onto Peel's records.

`load_csv_source` returns exactly the frame `loader.load_street_folder` returns, so everything
downstream (partitioning, the agencies' loaders, the tasks) is the same for every source.

Every problem is a one-line `DataError` naming the file, the row as a spreadsheet numbers it (the
header is row 1) and the column. A line longer than `checks.MAX_LINE_BYTES` is refused before
parsing, so a broken export cannot exhaust memory or flood an error message.

Speed: a column is handled as its distinct values plus one code per row (`_Coded`): stripping,
value maps and checks run once per distinct value, not once per cell.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from .checks import DELIMITERS, check_line_lengths, check_regular_file, delimiter_hint, implausible_month, shorten
from .errors import DataError
from .loader import LoadReport
from .schema import AGENCY, CRIME_TYPES, MONTH_PATTERN, OUTCOME_CATEGORIES, RECORD_COLUMNS

# Peel's record fields a CSV column can be mapped onto (data.columns).
FIELDS: tuple[str, ...] = ("agency", "date", "month", "latitude", "longitude", "area", "category", "outcome", "crime_id")
# Fields whose values can be translated by data.values ({field: {their value: Peel's value}}).
VALUE_FIELDS: tuple[str, ...] = ("agency", "area", "category", "outcome")
# Free-text date layouts tried when data.date_format is not given (each with each time layout),
# besides pandas' own guess. Month-first and day-first layouts are both candidates: the data
# decides, once for the whole column.
_DATE_LAYOUTS = (
    "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%m-%d-%Y", "%d-%m-%Y", "%d.%m.%Y",
    "%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y",
)
_TIME_LAYOUTS = (
    "", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p", " %I:%M%p", "T%H:%M", "T%H:%M:%S",
    " %H:%M:%S.%f", "T%H:%M:%S.%f",
)
_CANDIDATE_FORMATS = tuple(d + t for d in _DATE_LAYOUTS for t in _TIME_LAYOUTS)
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_DIRECTIVE = re.compile(r"%[-#]?[YymdbBjUWGVu]")
# Rows tried against every candidate date format before the whole column is read.
_SAMPLE = 2000
_DATE_HINT = "set data.date_format (e.g. '%m/%d/%Y %I:%M %p')"


@dataclass
class CsvLoadReport(LoadReport):
    """`LoadReport` plus what the mapping left unresolved."""

    unknown_categories: dict[str, int] = field(default_factory=dict)  # their value -> records
    rows_hashed_id: int = 0  # records whose crime id is a hash of their cells (no id given)
    blank_rows: int = 0  # empty lines skipped
    date_format: str | None = None  # the format the dates were read with

    def lines(self) -> list[str]:
        extra = []
        if self.date_format:
            extra.append(f"dates read as {self.date_format!r}")
        if self.unknown_categories:
            top = sorted(self.unknown_categories.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{shorten(k)} ({v:,})" for k, v in top[:5])
            more = f" and {len(top) - 5} more" if len(top) > 5 else ""
            extra.append(f"categories not mapped onto a Peel crime type (data.values.category): {shown}{more}")
        if self.rows_hashed_id:
            extra.append(f"{self.rows_hashed_id:,} records without a crime id got a hash of their cells as id")
        if self.blank_rows:
            extra.append(f"{self.blank_rows:,} blank rows skipped")
        return [*super().lines(), *extra]


def load_csv_source(
    path: Path,
    columns: dict[str, Any],
    values: dict[str, Any] | None = None,
    date_format: str | None = None,
    delimiter: str = ",",
) -> tuple[pd.DataFrame, CsvLoadReport]:
    """Read one incident CSV whose `columns` ({Peel field: their column}) say where each record
    field is, translating values with `values` ({field: {their value: Peel's value}}).

    Returns the frame of `load_street_folder` (the values of `schema.RECORD_COLUMNS` plus
    `schema.AGENCY`; text "" when missing, coordinates float NaN when missing) and a report.
    `lsoa_code` holds the mapped area (so the public areas table can key on precinct or beat
    codes); `reported_by` and `falls_within` hold the agency, so the agency's partitioned folder
    reloads as itself with the default agency column. Raises DataError (one line) on bad input.
    """
    path = Path(path)
    columns = _check_columns(columns)
    values = _check_values(values or {}, columns)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        raise DataError(
            f"data.delimiter: {delimiter!r} must be one character other than a quote or line break "
            '(write a tab as "\\t")'
        )
    if date_format is not None and "date" not in columns:
        raise DataError("data.date_format: only for a free-text date column (data.columns.date)")
    data = _read_bytes(path)
    frame = _parse(data, path, delimiter, columns)
    rows = np.arange(2, len(frame) + 2)  # spreadsheet row of each record (header = row 1)
    cells = {f: frame[c].to_numpy(dtype=object) for f, c in columns.items()}
    blank = _blank_rows(frame, cells["agency"])
    if blank.any():  # blank lines (often at the end) are not records; row numbers stay true
        rows, cells = rows[~blank], {f: v[~blank] for f, v in cells.items()}
    if len(rows) == 0:
        raise DataError(f"{path}: no records below the header (row 1); with zero records no agency can train or test")
    where = _Where(path, rows, columns)

    # NFC before mapping and comparing: "Café" as one code point or as "e" + accent is one agency.
    agency = _Coded.of(cells["agency"]).nfc().translated(values.get("agency"))
    where.fail(agency.rows_where(agency.uniques == ""), "agency", lambda i: "agency is empty")
    if "date" in columns:
        month_index, used_format = _months_from_dates(cells["date"], date_format, where)
        month = _month_labels(month_index)
    else:
        month, used_format = _months(cells["month"], where), None
    _check_month_range(month, "date" if "date" in columns else "month", where)
    longitude = _coordinate(cells, "longitude", 180, where)
    latitude = _coordinate(cells, "latitude", 90, where)
    category = _text(cells, values, "category")
    unknown = _unknown_categories(category)
    outcome = _text(cells, values, "outcome")
    _check_outcomes(outcome, "outcome" in values, where)
    crime_id, hashed = _crime_ids(cells, where)
    per_agency = _check_agency_sizes(agency, where)

    agency_names = agency.values()
    text = {"crime_id": crime_id, "month": month, "reported_by": agency_names, "falls_within": agency_names,
            "lsoa_code": _text(cells, values, "area").values(), "crime_type": category.values(), "outcome": outcome.values()}
    empty = np.full(len(rows), "", dtype=object)
    out: dict[str, object] = {}
    for name in RECORD_COLUMNS.values():
        if name in ("longitude", "latitude"):
            out[name] = longitude if name == "longitude" else latitude
        else:
            out[name] = pd.array(text.get(name, empty), dtype="str")
    out[AGENCY] = out["falls_within"]
    records = pd.DataFrame(out)
    report = CsvLoadReport(
        files=1,
        rows=len(records),
        rows_no_outcome=int(np.bincount(outcome.codes, minlength=len(outcome.uniques))[outcome.uniques == ""].sum()),
        rows_no_location=int((np.isnan(longitude) | np.isnan(latitude)).sum()),
        rows_unknown_crime_type=sum(unknown.values()),
        per_agency=per_agency,
        unknown_categories=unknown,
        rows_hashed_id=hashed,
        blank_rows=int(blank.sum()),
        date_format=used_format,
    )
    return records, report


@dataclass(frozen=True)
class _Coded:
    """A text column as its distinct values and one code per row (codes number the values in
    order of first appearance, as pandas.factorize does)."""

    codes: np.ndarray
    uniques: np.ndarray  # object array of str

    @classmethod
    def of(cls, raw: np.ndarray, strip: bool = True) -> _Coded:
        codes, uniques = pd.factorize(raw)
        uniques = np.asarray(uniques, dtype=object)
        coded = cls(codes, uniques)
        if strip:
            stripped = np.array([u.strip() for u in uniques.tolist()], dtype=object)
            if len(stripped) and (stripped != uniques).any():
                coded = coded._merged(stripped)
        return coded

    def nfc(self) -> _Coded:
        """The distinct values in Unicode NFC (merging values that differ only in form)."""
        normal = np.array([unicodedata.normalize("NFC", u) for u in self.uniques.tolist()], dtype=object)
        return self._merged(normal) if len(normal) and (normal != self.uniques).any() else self

    def translated(self, mapping: dict[str, str] | None) -> _Coded:
        if not mapping:
            return self
        return self._merged(np.array([mapping.get(u, u) for u in self.uniques.tolist()], dtype=object))

    def _merged(self, new_uniques: np.ndarray) -> _Coded:
        """Replace the distinct values, merging those that became equal."""
        codes, uniques = pd.factorize(new_uniques)
        return _Coded(codes[self.codes], np.asarray(uniques, dtype=object))

    def values(self) -> np.ndarray:
        return self.uniques[self.codes]

    def rows_where(self, bad_values: np.ndarray) -> np.ndarray:
        """Per row: is its value one of the `bad_values` (a mask over `uniques`)?"""
        return np.asarray(bad_values, dtype=bool)[self.codes] if np.any(bad_values) else np.zeros(len(self.codes), dtype=bool)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.uniques))


@dataclass(frozen=True)
class _Where:
    """Names the file, spreadsheet row and column of a bad cell."""

    path: Path
    rows: np.ndarray
    columns: dict[str, str]

    def fail(self, bad: np.ndarray, fld: str, describe: Callable[[int], str]) -> None:
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(self.at(i, fld, describe(i)))

    def at(self, i: int, fld: str, what: str) -> str:
        return f"{self.path}: row {self.rows[i]}, column {self.columns[fld]!r} (data.columns.{fld}): {what}"


def _check_columns(columns: dict[str, Any]) -> dict[str, str]:
    if not isinstance(columns, dict):
        raise DataError("data.columns: must map Peel's fields (agency, date or month, category, ...) to column names")
    unknown = [k for k in columns if k not in FIELDS]
    if unknown:
        raise DataError(f"data.columns: unknown field {unknown[0]!r}; fields: {', '.join(FIELDS)}")
    given = {k: str(v).strip() for k, v in columns.items() if v is not None and str(v).strip()}
    for required in ("agency", "category"):
        if required not in given:
            raise DataError(f"data.columns.{required}: required (the column that holds each record's {required})")
    if ("date" in given) == ("month" in given):
        raise DataError("data.columns: give exactly one of date (free-text dates) or month (YYYY-MM)")
    if ("latitude" in given) != ("longitude" in given):
        raise DataError("data.columns: give both latitude and longitude, or neither")
    return given


def _check_values(values: dict[str, Any], columns: dict[str, str]) -> dict[str, dict[str, str]]:
    allowed = {"category": CRIME_TYPES, "outcome": (*OUTCOME_CATEGORIES, "")}
    out = {}
    for fld, mapping in values.items():
        if fld not in VALUE_FIELDS:
            raise DataError(f"data.values: {fld!r} cannot be mapped; value maps exist for {', '.join(VALUE_FIELDS)}")
        if fld not in columns:
            raise DataError(f"data.values.{fld}: no column is mapped to {fld} in data.columns")
        if not isinstance(mapping, dict):
            raise DataError(f"data.values.{fld}: must map their values to Peel's values")
        clean = {str(k).strip(): ("" if v is None else str(v).strip()) for k, v in mapping.items()}
        if fld == "agency":  # compared with the data's agency values, which are NFC
            clean = {unicodedata.normalize("NFC", k): unicodedata.normalize("NFC", v) for k, v in clean.items()}
        for theirs, ours in clean.items():
            if fld in allowed and ours not in allowed[fld]:
                kind = "crime type" if fld == "category" else "outcome category (or '' for no outcome)"
                options = "; ".join(repr(a) for a in allowed[fld])
                raise DataError(f"data.values.{fld}: {theirs!r} maps to {ours!r}, which is not a Peel {kind}; allowed: {options}")
            if fld == "agency" and not ours:
                raise DataError(f"data.values.agency: {theirs!r} maps to an empty agency name")
        out[fld] = clean
    return out


# A whole city's export of several years is a few hundred MB; it is read into memory at once.
MAX_CSV_BYTES = 2 * 1024 * 1024 * 1024


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file (data.source csv reads one CSV file)")
    check_regular_file(path, MAX_CSV_BYTES)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as spreadsheets write
    if not data or data.isspace():
        raise DataError(f"{path}: the file is empty; expected a header row and records")
    check_line_lengths(data, path)
    return data


def _not_utf8(data: bytes, path: Path) -> DataError:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        return DataError(
            f"{path}: line {line}, byte {column} of the line (byte {err.start} of the file): not UTF-8 text "
            f"({err.reason}, byte 0x{data[err.start]:02x}); save the export as UTF-8"
        )
    return DataError(f"{path}: not UTF-8 text; save the export as UTF-8")


def _parse(data: bytes, path: Path, delimiter: str, columns: dict[str, str]) -> pd.DataFrame:
    """Every cell as str ("" when empty), header names stripped, mapped columns present."""
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep=delimiter, dtype=object, na_filter=False, skip_blank_lines=False,
            encoding="utf-8", engine="c",
        )
    except UnicodeDecodeError:
        raise _not_utf8(data, path) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header row and records") from None
    except (pd.errors.ParserError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = reason.removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"{path}: cannot be read as CSV with delimiter {delimiter!r} ({reason})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    wanted = list(dict.fromkeys(columns.values()))
    missing = [c for c in wanted if c not in frame.columns]
    if missing and len(frame.columns) == 1 and len(wanted) > 1:
        header = frame.columns[0]
        hint = delimiter_hint(header, delimiter)
        raise DataError(
            f"{path}: row 1 (header) is a single column {shorten(header)} when split at {DELIMITERS.get(delimiter, repr(delimiter))}, "
            f"but data.columns names {len(wanted)} columns{hint + ': set data.delimiter' if hint else ''}"
        )
    if missing:
        fields = {c: f for f, c in reversed(columns.items())}
        named = ", ".join(f"{c!r} (data.columns.{fields[c]})" for c in missing)
        present = ", ".join(repr(c) for c in frame.columns)
        raise DataError(f"{path}: row 1 (header): no column {named}; the columns are {present}")
    return frame


def _blank_rows(frame: pd.DataFrame, agency: np.ndarray) -> np.ndarray:
    """Rows with every cell empty (blank lines, or a spreadsheet's ",,,,"); only rows without an
    agency are looked at, so a clean file costs one comparison."""
    blank = agency == ""
    if blank.any():
        candidates = np.flatnonzero(blank)
        cells = frame.iloc[candidates].to_numpy(dtype=object)
        all_empty = np.array([all(not str(c).strip() for c in row) for row in cells], dtype=bool)
        blank[candidates[~all_empty]] = False
    return blank


def _text(cells: dict[str, np.ndarray], values: dict[str, Any], fld: str) -> _Coded:
    """A text field ("" when not mapped), translated by data.values.<field> where given."""
    if fld not in cells:
        n = len(next(iter(cells.values())))
        return _Coded(np.zeros(n, dtype=np.intp), np.array([""], dtype=object))
    return _Coded.of(cells[fld]).translated(values.get(fld))


def _months(raw: np.ndarray, where: _Where) -> np.ndarray:
    month = _Coded.of(raw)
    bad = np.array([re.fullmatch(MONTH_PATTERN, u) is None for u in month.uniques.tolist()], dtype=bool)
    where.fail(month.rows_where(bad), "month", lambda i: f"{shorten(month.values()[i])} is not a month 'YYYY-MM'")
    return month.values()


def _check_month_range(month: np.ndarray, fld: str, where: _Where) -> None:
    """Refuse a month before 2000 or after the current one (a typo such as 2999 or 0000 would
    move every agency's train/test split), naming its row."""
    distinct = pd.unique(month)
    odd = {m: why for m in distinct.tolist() if (why := implausible_month(m))}
    if odd:
        where.fail(pd.Index(month).isin(list(odd)), fld, lambda i: f"month {month[i]} {odd[month[i]]}")


def _month_labels(month_index: np.ndarray) -> np.ndarray:
    distinct, inverse = np.unique(month_index, return_inverse=True)
    labels = np.array([f"{m // 12:04d}-{m % 12 + 1:02d}" for m in distinct.tolist()], dtype=object)
    return labels[inverse.reshape(-1)]


def _months_from_dates(raw: np.ndarray, date_format: str | None, where: _Where) -> tuple[np.ndarray, str]:
    """year * 12 + month - 1 of every free-text date, read with one format for the whole column:
    the given one, or the one the data allows (never day-first on some rows and month-first on
    others). Returns it with the format used."""
    where.fail(raw == "", "date", lambda i: "date is empty")
    if date_format:
        month_index = _read_months(raw, date_format)
        where.fail(month_index < 0, "date", lambda i: f"{shorten(raw[i])} does not match data.date_format {date_format!r}")
        return month_index, date_format
    return _infer_format(raw, where)


def _read_months(raw: np.ndarray, fmt: str) -> np.ndarray:
    """year * 12 + month - 1 of each text under `fmt`, -1 where it does not read.

    Dates with times are nearly all distinct, so when `fmt` is a date part, a separator and a
    time part, the two parts are read apart (few distinct values each); cells that fail that
    way are read whole, so the result is what reading every cell whole would give."""
    split = _split_format(fmt)
    if split is None:
        return _read_whole(raw, fmt)
    date_fmt, sep, time_fmt = split
    heads, tails = _partition(raw, sep)
    day, clock = _Coded.of(heads), _Coded.of(tails)
    months = _parse_months(day.uniques, date_fmt)
    times_ok = (clock.uniques == "") if not time_fmt else (_parse_months(clock.uniques, time_fmt, local_months=False) >= 0)
    month_index = np.where(times_ok[clock.codes], months[day.codes], -1)
    failed = np.flatnonzero(month_index < 0)
    if len(failed):
        month_index[failed] = _read_whole(raw[failed], fmt)
    return month_index


def _partition(raw: np.ndarray, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Each text split at its first `sep`: (before, after) as object arrays."""
    if hasattr(np, "strings") and hasattr(np.strings, "partition") and len(raw):  # numpy >= 2.3: in C
        heads, _, tails = np.strings.partition(raw.astype(str), sep)
        return heads.astype(object), tails.astype(object)
    parts = [v.partition(sep) for v in raw.tolist()]
    return np.array([p[0] for p in parts], dtype=object), np.array([p[2] for p in parts], dtype=object)


def _read_whole(raw: np.ndarray, fmt: str) -> np.ndarray:
    coded = _Coded.of(raw)
    return _parse_months(coded.uniques, fmt)[coded.codes]


def _split_format(fmt: str) -> tuple[str, str, str] | None:
    """("%m/%d/%Y", " ", "%I:%M %p") for "%m/%d/%Y %I:%M %p": the date part must end at a space or
    "T" that does not occur in it; None when the format cannot be split that way."""
    if fmt == "ISO8601":
        return None
    directives = list(_DATE_DIRECTIVE.finditer(fmt))
    last = directives[-1] if directives else None
    if last is None or last.end() >= len(fmt):
        return None
    date_fmt, sep, time_fmt = fmt[: last.end()], fmt[last.end()], fmt[last.end() + 1 :]
    if sep not in " T" or sep in date_fmt:
        return None
    return date_fmt, sep, time_fmt.lstrip(" ") if sep == " " else time_fmt


def _parse_months(uniques: np.ndarray, fmt: str, local_months: bool = True) -> np.ndarray:
    """year * 12 + month - 1 of each text under `fmt`, -1 where it does not parse (0 for every
    readable text when `local_months` is False: only whether it reads is wanted)."""
    if len(uniques) == 0:
        return np.zeros(0, dtype=np.int64)
    index = pd.Index(uniques, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(index, format=fmt, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            parsed = None
        if parsed is None:  # e.g. offsets that change with daylight saving: -05:00 and -04:00
            try:
                ok = ~np.asarray(pd.to_datetime(index, format=fmt, errors="coerce", utc=True).isna())
            except (ValueError, TypeError, OverflowError):  # an invalid format
                return np.full(len(uniques), -1, dtype=np.int64)
            if not local_months:
                return np.where(ok, 0, -1).astype(np.int64)
            # The month on the record's own clock, not in UTC: each text read with its own offset.
            local = [pd.Timestamp(datetime.strptime(u, fmt)) if fmt != "ISO8601" else pd.Timestamp(u) for u in uniques[ok].tolist()]
            months = np.full(len(uniques), -1, dtype=np.int64)
            months[ok] = [t.year * 12 + t.month - 1 for t in local]
            return months
    ok = ~np.asarray(parsed.isna())
    if not local_months:
        return np.where(ok, 0, -1).astype(np.int64)
    months = np.where(ok, np.asarray(parsed.year, dtype=np.float64) * 12 + np.asarray(parsed.month, dtype=np.float64) - 1, -1)
    return months.astype(np.int64)


def _candidates(first: str) -> list[str]:
    """Formats that read the first date: pandas' guesses, ISO 8601, then the layouts above."""
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when a day-first guess is month-first
        for dayfirst in (False, True):
            guess = guess_datetime_format(first, dayfirst=dayfirst)
            if guess:
                found.append(guess)
    if _ISO_START.match(first):
        found.append("ISO8601")
    for fmt in _CANDIDATE_FORMATS:
        if not _plausible(fmt, first):
            continue
        try:
            datetime.strptime(first, fmt)
        except ValueError:
            continue
        found.append(fmt)
    return list(dict.fromkeys(found))


def _plausible(fmt: str, text: str) -> bool:
    """Cheap filter before strptime (whose format compilation is slow): the format's separators
    must occur in the text as often as in the format."""
    literal = re.sub(r"%.", "", fmt)
    return all(literal.count(c) == text.count(c) for c in "/-.:,T") and (("%p" in fmt) == bool(re.search(r"[AaPp]\.?[Mm]", text)))


def _infer_format(raw: np.ndarray, where: _Where) -> tuple[np.ndarray, str]:
    """Decide one date format for the column from the data, or fail naming the rows."""
    candidates = _candidates(raw[0].strip())
    if not candidates:
        raise DataError(where.at(0, "date", f"cannot tell the date format of {shorten(raw[0])}; {_DATE_HINT}"))
    # Narrow on a sample of rows, then read the whole column with what is left (usually one).
    sample = raw[np.unique(np.linspace(0, len(raw) - 1, min(len(raw), _SAMPLE)).astype(int))]
    on_sample = {fmt: _read_whole(sample, fmt) for fmt in candidates}
    fit = [fmt for fmt in candidates if (on_sample[fmt] >= 0).all()]
    finalists: list[str] = []
    for fmt in fit:  # formats that read the sample alike (e.g. ISO8601 and %Y-%m-%d) count once
        if all((on_sample[fmt] != on_sample[other]).any() for other in finalists):
            finalists.append(fmt)
    finalists = finalists or candidates
    full = {fmt: _read_months(raw, fmt) for fmt in finalists}
    readers = [fmt for fmt in finalists if (full[fmt] >= 0).all()]
    if readers:
        chosen = readers[0]
        for other in readers[1:]:
            differ = full[other] != full[chosen]
            if differ.any():  # e.g. only days <= 12: "03/04" is March or April
                i = int(np.argmax(differ))
                raise DataError(where.at(i, "date", (
                    f"{shorten(raw[i])} reads as {_month(full[chosen][i])} with {chosen!r} and as {_month(full[other][i])} "
                    f"with {other!r}, and no date in the column decides which; {_DATE_HINT}"
                )))
        return full[chosen], chosen
    best = max(finalists, key=lambda f: int((full[f] >= 0).sum()))
    i = int(np.argmax(full[best] < 0))
    k = int(np.argmax(full[best] >= 0))
    for other in _candidates(raw[i].strip()):  # another format reads it: the column mixes layouts
        if other != best and _read_whole(raw[i : i + 1], other)[0] >= 0 and (full[best] >= 0).any():
            raise DataError(where.at(i, "date", (
                f"{shorten(raw[i])} reads only as {other!r}, but row {where.rows[k]} ({shorten(raw[k])}) reads only as "
                f"{best!r}: the column mixes date layouts (month-first and day-first?); fix the export or {_DATE_HINT}"
            )))
    if not (full[best] >= 0).any():
        raise DataError(where.at(i, "date", f"{shorten(raw[i])} does not parse as a date; {_DATE_HINT}"))
    raise DataError(where.at(i, "date", (
        f"{shorten(raw[i])} does not parse as a date like row {where.rows[k]} ({shorten(raw[k])}, format {best!r}); "
        f"fix the cell or {_DATE_HINT}"
    )))


def _month(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _coordinate(cells: dict[str, np.ndarray], fld: str, limit: float, where: _Where) -> np.ndarray:
    if fld not in cells:
        return np.full(len(where.rows), np.nan)
    texts = cells[fld]
    numbers = pd.to_numeric(texts, errors="coerce").astype(np.float64)  # "" and blanks -> NaN
    unread = np.flatnonzero(np.isnan(numbers))
    if len(unread):
        bad = np.zeros(len(texts), dtype=bool)
        bad[unread] = [bool(t.strip()) for t in texts[unread].tolist()]
        where.fail(bad, fld, lambda i: f"{shorten(texts[i])} is not a number")
    where.fail(np.isinf(numbers), fld, lambda i: f"{shorten(texts[i])} is not a finite number")
    where.fail(np.abs(numbers) > limit, fld, lambda i: f"{fld} {shorten(texts[i].strip())} is out of range [-{limit:g}, {limit:g}]")
    return numbers


def _unknown_categories(category: _Coded) -> dict[str, int]:
    """Categories after data.values.category that are not Peel crime types: kept (the features
    give them the "unknown" slot) and counted per value, so the map can be completed."""
    unknown = pd.Index(CRIME_TYPES).get_indexer(category.uniques) < 0
    counts = category.counts()
    return {str(category.uniques[j]): int(counts[j]) for j in np.flatnonzero(unknown)}


def _check_outcomes(outcome: _Coded, mapped: bool, where: _Where) -> None:
    """Outcomes must end up as Peel outcome categories or "" (no outcome, kept): an unknown
    disposition silently counted as a negative label would corrupt the task."""
    unknown = (outcome.uniques != "") & (pd.Index(OUTCOME_CATEGORIES).get_indexer(outcome.uniques) < 0)
    if unknown.any():
        distinct = outcome.uniques[unknown].tolist()
        shown = ", ".join(shorten(v, 40) for v in distinct[:5]) + (f" and {len(distinct) - 5} more" if len(distinct) > 5 else "")
        how = "add them to data.values.outcome" if mapped else "map them with data.values.outcome"
        where.fail(outcome.rows_where(unknown), "outcome", lambda i: (
            f"{shorten(outcome.values()[i])} is not a Peel outcome category ({len(distinct)} such "
            f"value{'s' if len(distinct) > 1 else ''}: {shown}); {how} (onto a Peel outcome, or '' for no outcome)"
        ))


def _crime_ids(cells: dict[str, np.ndarray], where: _Where) -> tuple[np.ndarray, int]:
    """Their ids where given (must be unique); elsewhere a stable hash of the row's mapped cells,
    with a counter for rows whose cells are all the same, so ids are unique and reproducible."""
    n = len(where.rows)
    if "crime_id" in cells:
        ids = _Coded.of(cells["crime_id"])
    else:
        ids = _Coded(np.zeros(n, dtype=np.intp), np.array([""], dtype=object))
    given = ids.uniques != ""
    repeated = pd.Series(ids.codes).duplicated().to_numpy() & given[ids.codes]
    if repeated.any():
        i = int(np.argmax(repeated))
        earlier = int(np.argmax(ids.codes == ids.codes[i]))
        what = f"crime id {shorten(ids.uniques[ids.codes[i]])} also appears on row {where.rows[earlier]}; crime ids must be unique"
        raise DataError(where.at(i, "crime_id", what))
    values = ids.values()
    missing = np.flatnonzero(~given[ids.codes])
    if len(missing):
        digest = np.zeros(len(missing), dtype=np.uint64)
        for fld in sorted(cells):  # a fixed order: the same cells always give the same id
            with np.errstate(over="ignore"):
                digest = digest * np.uint64(1_000_003) ^ pd.util.hash_array(cells[fld][missing], categorize=False)
        hashed = _hex_ids(digest)
        repeat = pd.Series(digest).groupby(digest).cumcount().to_numpy()
        for k in np.flatnonzero(repeat):  # identical rows: the 2nd, 3rd, ... get a counter
            hashed[k] = f"{hashed[k]}-{repeat[k] + 1}"
        ours = np.array([u.startswith("row-") for u in ids.uniques.tolist()], dtype=bool) & given
        if ours.any():  # a given id that looks like one of ours must not collide with it
            clash = pd.Index(ids.uniques[ours]).isin(hashed)
            if clash.any():
                taken = ids.uniques[ours][clash][0]
                i = int(np.argmax(values == taken))
                raise DataError(where.at(i, "crime_id", f"crime id {shorten(taken)} clashes with the hash id of a row without an id"))
        values = values.copy()
        values[missing] = hashed
    return values, len(missing)


def _hex_ids(digest: np.ndarray) -> np.ndarray:
    """"row-" + 16 hex digits of each uint64, as an object array (vectorised: ids of a file
    without an id column are made for every row)."""
    nibbles = (digest[:, None] >> np.arange(60, -4, -4, dtype=np.uint64)) & np.uint64(15)
    chars = np.ascontiguousarray(np.array(list("0123456789abcdef"), dtype="<U1")[nibbles])
    return np.array(["row-" + h for h in chars.view("<U16").reshape(-1).tolist()], dtype=object)


def _check_agency_sizes(agency: _Coded, where: _Where) -> dict[str, int]:
    counts = agency.counts()
    small = counts <= 1
    if small.any():
        j = int(np.argmax(small))
        raise DataError(where.at(
            int(np.argmax(agency.codes == j)), "agency",
            f"agency {shorten(agency.uniques[j])} has only 1 record: an agency needs records to train on and to test on; "
            "drop its rows or merge it into another agency with data.values.agency",
        ))
    return {str(agency.uniques[j]): int(counts[j]) for j in np.argsort(agency.uniques.astype(str), kind="stable")}
