"""`data.source: csv` — one incident table in a city's own layout (for example a US police
department's export with a precinct column and free-text dates), mapped onto Peel's records.

`load_csv_source` returns exactly the frame `loader.load_street_folder` returns, so everything
downstream (partitioning, the agencies' loaders, the tasks) is the same for every source.

Every problem is a one-line `DataError` naming the file, the row as a spreadsheet numbers it (the
header is row 1) and the column. A line longer than `checks.MAX_LINE_BYTES` is refused before
parsing, so a broken export cannot exhaust memory or flood an error message.

Dates and months are read in policedata/csv_dates.py. A city's own vocabulary (`CsvVocabulary`,
from the config): outcomes stay the city's own values unless data.values.outcome maps them
(task.positive names them, e.g. "YES"); categories and area codes are counted against the
declared lists; coordinates far outside the public region are flagged and counted, or refused.
With a free-text date column the records carry `date`, each record's local
"YYYY-MM-DD[THH:MM]" (day of week and hour of day become features).

Speed: a column is handled as its distinct values plus one code per row (`Coded`, policedata/csv_cells.py): stripping,
value maps and checks run once per distinct value, not once per cell.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .checks import DELIMITERS, check_line_lengths, check_regular_file, delimiter_hint, shorten
from .csv_cells import Coded, Where
from .csv_dates import check_month_range, local_times, month_labels, months, months_from_dates
from .csv_region import Box
from .errors import DataError
from .loader import LoadReport
from .persons import IDENTITY, IDENTITY_ROLE, ROLES
from .schema import AGENCY, CRIME_TYPES, DATE, OUTCOME_CATEGORIES, RECORD_COLUMNS

# A person's identity and role (data.columns.person, person_role): hashed into the agency's
# persons.csv (policedata/persons.py), never part of a record's fields or of its hashed id.
PERSON_FIELDS: tuple[str, ...] = (IDENTITY, IDENTITY_ROLE)
# Peel's record fields a CSV column can be mapped onto (data.columns).
FIELDS: tuple[str, ...] = ("agency", "date", "month", "latitude", "longitude", "area", "category", "outcome", "crime_id", *PERSON_FIELDS)
# Fields whose values can be translated by data.values ({field: {their value: Peel's value}}).
VALUE_FIELDS: tuple[str, ...] = ("agency", "area", "category", "outcome")


@dataclass(frozen=True)
class CsvVocabulary:
    """What the config declares about a city's own values (public, never read from the data)."""

    categories: tuple[str, ...] | None = None  # category features; None: Peel's crime types
    areas: tuple[str, ...] | None = None  # area codes whose identity is a feature
    positive: tuple[str, ...] = ()  # task.positive: each must occur among the outcomes
    region: Box | None = None  # the declared region, or the public areas table's extent
    outside_region: Literal["flag", "error"] = "flag"  # a record far outside `region`


@dataclass
class CsvLoadReport(LoadReport):
    """`LoadReport` plus what the mapping left unresolved."""

    unknown_categories: dict[str, int] = field(default_factory=dict)  # their value -> records
    rows_hashed_id: int = 0  # records whose crime id is a hash of their cells (no id given)
    blank_rows: int = 0  # empty lines skipped
    date_format: str | None = None  # the format the dates were read with
    declared_categories: bool = False  # unknown_categories counts against data.features.categories
    unknown_areas: dict[str, int] = field(default_factory=dict)  # area codes not in data.features.areas
    rows_outside_region: int = 0  # coordinates far outside the region (flagged, kept)
    region: str = ""  # the region's description, or why coordinates are no feature
    outcomes: dict[str, int] = field(default_factory=dict)  # outcome value -> records ("" left out)

    def lines(self) -> list[str]:
        extra = []
        if self.date_format:
            extra.append(f"dates read as {self.date_format!r}")
        if self.unknown_categories:
            top = sorted(self.unknown_categories.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{shorten(k)} ({v:,})" for k, v in top[:5])
            more = f" and {len(top) - 5} more" if len(top) > 5 else ""
            where = "not in data.features.categories" if self.declared_categories else "not mapped onto a Peel crime type (data.values.category)"
            extra.append(f"categories {where}, encoded as unknown: {shown}{more}")
        if self.unknown_areas:
            top = sorted(self.unknown_areas.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{shorten(k)} ({v:,})" for k, v in top[:5]) + (f" and {len(top) - 5} more" if len(top) > 5 else "")
            extra.append(f"{sum(self.unknown_areas.values()):,} records with an area not in data.features.areas, encoded as unknown: {shown}")
        if self.region:
            extra.append(f"coordinates: {self.region}")
        if self.rows_outside_region:
            extra.append(f"{self.rows_outside_region:,} records far outside that region (kept, flagged; no coordinate features)")
        if self.outcomes:
            top = sorted(self.outcomes.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{shorten(k)} ({v:,})" for k, v in top[:8]) + (f" and {len(top) - 8} more" if len(top) > 8 else "")
            extra.append(f"outcome values: {shown}")
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
    vocabulary: CsvVocabulary | None = None,
    min_agency_records: int = 2,
) -> tuple[pd.DataFrame, CsvLoadReport]:
    """Read one incident CSV whose `columns` ({Peel field: their column}) say where each record
    field is, translating values with `values` ({field: {their value: Peel's value}}), and
    count the records against the declared `vocabulary`.

    Returns the frame of `load_street_folder` (the values of `schema.RECORD_COLUMNS` plus
    `schema.AGENCY`; text "" when missing, coordinates float NaN when missing) and a report.
    `lsoa_code` holds the mapped area (so the public areas table can key on precinct or beat
    codes); `reported_by` and `falls_within` hold the agency, so the agency's partitioned folder
    reloads as itself with the default agency column. With a `date` column the frame ends with
    `DATE`. Raises DataError (one line) on bad input.
    """
    path = Path(path)
    vocabulary = vocabulary or CsvVocabulary()
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
    where = Where(path, rows, columns)

    # NFC before mapping and comparing: "Café" as one code point or as "e" + accent is one agency.
    agency = Coded.of(cells["agency"]).nfc().translated(values.get("agency"))
    where.fail(agency.rows_where(agency.uniques == ""), "agency", lambda i: "agency is empty")
    if "date" in columns:
        month_index, used_format = months_from_dates(cells["date"], date_format, where)
        month = month_labels(month_index)
        local = local_times(cells["date"], used_format)
    else:
        month, used_format, local = months(cells["month"], where), None, None
    check_month_range(month, "date" if "date" in columns else "month", where)
    longitude = _coordinate(cells, "longitude", 180, where)
    latitude = _coordinate(cells, "latitude", 90, where)
    outside, region_note = _outside_region(latitude, longitude, vocabulary, where)
    category = _text(cells, values, "category")
    unknown = _unknown_categories(category, vocabulary.categories)
    area = _text(cells, values, "area")
    unknown_areas = _unknown_values(area, vocabulary.areas) if vocabulary.areas is not None and "area" in columns else {}
    outcome = _text(cells, values, "outcome")
    if "outcome" in values:  # mapped onto Peel's outcomes: a value left out of the map is an error
        _check_outcomes(outcome, True, where)
    outcomes = _outcome_counts(outcome)
    _check_positive(vocabulary.positive, outcomes, where, "outcome" in values)
    crime_id, hashed = _crime_ids(cells, where)
    per_agency = _check_agency_sizes(agency, where, min_agency_records)

    agency_names = agency.values()
    text = {"crime_id": crime_id, "month": month, "reported_by": agency_names, "falls_within": agency_names,
            "lsoa_code": area.values(), "crime_type": category.values(), "outcome": outcome.values()}
    empty = np.full(len(rows), "", dtype=object)
    out: dict[str, object] = {}
    for name in RECORD_COLUMNS.values():
        if name in ("longitude", "latitude"):
            out[name] = longitude if name == "longitude" else latitude
        else:
            out[name] = pd.array(text.get(name, empty), dtype="str")
    out[AGENCY] = out["falls_within"]
    if local is not None:
        out[DATE] = pd.array(local, dtype="str")
    out.update(_persons(cells, columns, where))
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
        declared_categories=vocabulary.categories is not None,
        unknown_areas=unknown_areas,
        rows_outside_region=int(outside.sum()),
        region=region_note,
        outcomes={k: v for k, v in outcomes.items() if k},
    )
    return records, report


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
    return np.asarray(blank)


def _persons(cells: dict[str, np.ndarray], columns: dict[str, str], where: Where) -> dict[str, object]:
    """The raw identity and role columns of the records frame (none without data.columns.person)."""
    if IDENTITY_ROLE in columns and IDENTITY not in columns:
        raise DataError("data.columns.person_role: only with data.columns.person (the column naming the person)")
    if IDENTITY not in columns:
        return {}
    identity = Coded.of(cells[IDENTITY]).nfc()
    out: dict[str, object] = {IDENTITY: pd.array(identity.values(), dtype="str")}
    if IDENTITY_ROLE in columns:
        role = Coded.of(cells[IDENTITY_ROLE])
        role = role.translated({r: r.lower() for r in role.uniques.tolist()})  # "Victim" is victim
        bad = identity.values() != ""
        bad &= ~np.isin(role.values(), ROLES)
        where.fail(bad, IDENTITY_ROLE, lambda i: f"role {shorten(role.values()[i])} is not one of {', '.join(ROLES)}")
        out[IDENTITY_ROLE] = pd.array(role.values(), dtype="str")
    return out


def _text(cells: dict[str, np.ndarray], values: dict[str, Any], fld: str) -> Coded:
    """A text field ("" when not mapped), translated by data.values.<field> where given."""
    if fld not in cells:
        n = len(next(iter(cells.values())))
        return Coded(np.zeros(n, dtype=np.intp), np.array([""], dtype=object))
    return Coded.of(cells[fld]).translated(values.get(fld))


def _coordinate(cells: dict[str, np.ndarray], fld: str, limit: float, where: Where) -> np.ndarray:
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
    return np.asarray(numbers)


def _unknown_categories(category: Coded, declared: tuple[str, ...] | None) -> dict[str, int]:
    """Categories after data.values.category that are not Peel crime types (or, when declared,
    not in data.features.categories): kept (the features give them the "unknown" slot) and
    counted per value, so the map or the list can be completed."""
    return _unknown_values(category, CRIME_TYPES if declared is None else declared)


def _unknown_values(coded: Coded, known: tuple[str, ...]) -> dict[str, int]:
    """Records per value not in `known` (empty values included)."""
    unknown = pd.Index(known).get_indexer(coded.uniques) < 0
    counts = coded.counts()
    return {str(coded.uniques[j]): int(counts[j]) for j in np.flatnonzero(unknown)}


def _outside_region(latitude: np.ndarray, longitude: np.ndarray, vocabulary: CsvVocabulary, where: Where) -> tuple[np.ndarray, str]:
    """Records far outside the region (refused with data.features.outside_region: error), and
    a note on how coordinates are scaled."""
    if "latitude" not in where.columns:
        return np.zeros(len(where.rows), dtype=bool), ""
    region = vocabulary.region
    if region is None:
        return np.zeros(len(where.rows), dtype=bool), (
            "no feature: declare data.features.region (a bounding box) or give data.areas (the public table's centroids)"
        )
    outside = region.far_outside(latitude, longitude)
    if vocabulary.outside_region == "error":
        where.fail(outside, "latitude", lambda i: (
            f"({latitude[i]:g}, {longitude[i]:g}) lies far outside the region ({region.describe()}); fix the cell, "
            "widen data.features.region, or set data.features.outside_region: flag"
        ))
    return outside, f"scaled to {region.describe()}"


def _outcome_counts(outcome: Coded) -> dict[str, int]:
    counts = outcome.counts()
    return {str(u): int(counts[j]) for j, u in enumerate(outcome.uniques.tolist())}


def _check_positive(positive: tuple[str, ...], outcomes: dict[str, int], where: Where, mapped: bool) -> None:
    """Every task.positive value must occur among the outcomes: a label that never occurs
    would train a model on negatives only (typically a spelling: "Yes" for "YES")."""
    if not positive or "outcome" not in where.columns:
        return
    present = sorted(k for k in outcomes if k)
    missing = [p for p in positive if p not in outcomes]
    if missing:
        shown = ", ".join(shorten(v, 40) for v in present[:8]) + (f" and {len(present) - 8} more" if len(present) > 8 else "")
        after = " after data.values.outcome" if mapped else ""
        raise DataError(
            f"task.positive: {missing[0]!r} never occurs in column {where.columns['outcome']!r} of {where.path}{after}; "
            f"its values are {shown or 'all empty'} (name yours, quoted: task.positive: [\"{present[-1] if present else 'YES'}\"])"
        )


def _check_outcomes(outcome: Coded, mapped: bool, where: Where) -> None:
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


def _crime_ids(cells: dict[str, np.ndarray], where: Where) -> tuple[np.ndarray, int]:
    """Their ids where given (must be unique); elsewhere a stable hash of the row's mapped cells,
    with a counter for rows whose cells are all the same, so ids are unique and reproducible."""
    n = len(where.rows)
    if "crime_id" in cells:
        ids = Coded.of(cells["crime_id"])
    else:
        ids = Coded(np.zeros(n, dtype=np.intp), np.array([""], dtype=object))
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
        for fld in sorted(set(cells) - set(PERSON_FIELDS)):  # a fixed order: the same cells always give the same id
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


def _check_agency_sizes(agency: Coded, where: Where, minimum: int = 2) -> dict[str, int]:
    """Records per agency; an agency below `minimum` is an error (training needs 2: one to
    train on, one to test on; scoring new incidents with `peel predict` needs 1)."""
    counts = agency.counts()
    small = counts < minimum
    if small.any():
        j = int(np.argmax(small))
        raise DataError(where.at(
            int(np.argmax(agency.codes == j)), "agency",
            f"agency {shorten(agency.uniques[j])} has only 1 record: an agency needs records to train on and to test on; "
            "drop its rows or merge it into another agency with data.values.agency",
        ))
    return {str(agency.uniques[j]): int(counts[j]) for j in np.argsort(agency.uniques.astype(str), kind="stable")}
