"""Months from a CSV's date or month column (policedata/csv_source.py): a given date format, or
one inferred from the column (month-first and day-first decided once, by the data), and the
checks that every cell reads as one plausible month."""

from __future__ import annotations

import re
import warnings
from datetime import datetime

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from .checks import implausible_month, shorten
from .csv_cells import Coded, Where
from .errors import DataError
from .schema import MONTH_PATTERN

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


def months(raw: np.ndarray, where: Where) -> np.ndarray:
    month = Coded.of(raw)
    bad = np.array([re.fullmatch(MONTH_PATTERN, u) is None for u in month.uniques.tolist()], dtype=bool)
    where.fail(month.rows_where(bad), "month", lambda i: f"{shorten(month.values()[i])} is not a month 'YYYY-MM'")
    return month.values()


def check_month_range(month: np.ndarray, fld: str, where: Where) -> None:
    """Refuse a month before 2000 or after the current one (a typo such as 2999 or 0000 would
    move every agency's train/test split), naming its row."""
    distinct = pd.unique(month)
    odd = {m: why for m in distinct.tolist() if (why := implausible_month(m))}
    if odd:
        where.fail(pd.Index(month).isin(list(odd)), fld, lambda i: f"month {month[i]} {odd[month[i]]}")


def month_labels(month_index: np.ndarray) -> np.ndarray:
    distinct, inverse = np.unique(month_index, return_inverse=True)
    labels = np.array([f"{m // 12:04d}-{m % 12 + 1:02d}" for m in distinct.tolist()], dtype=object)
    return labels[inverse.reshape(-1)]


def months_from_dates(raw: np.ndarray, date_format: str | None, where: Where) -> tuple[np.ndarray, str]:
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
    day, clock = Coded.of(heads), Coded.of(tails)
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
    coded = Coded.of(raw)
    return np.asarray(_parse_months(coded.uniques, fmt)[coded.codes])


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


def _infer_format(raw: np.ndarray, where: Where) -> tuple[np.ndarray, str]:
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


# Directives that put a time of day in a format: a date read with none of them carries no time.
_TIME_DIRECTIVE = re.compile(r"%[-#]?[HIMSp]")


def local_times(raw: np.ndarray, fmt: str) -> np.ndarray:
    """Each date's own local date and time as "YYYY-MM-DDTHH:MM" ("YYYY-MM-DD" when the format
    carries no time of day), read with the column's format `fmt` (every cell already read as a
    month with it). Each cell is read alone: no other record changes a record's time."""
    coded = Coded.of(raw)
    with_time = fmt == "ISO8601" or bool(_TIME_DIRECTIVE.search(fmt))
    split = _split_format(fmt)
    if split is not None:  # few distinct days and clock times, as in _read_months
        date_fmt, sep, time_fmt = split
        heads, tails = _partition(coded.uniques.astype(object), sep)
        days, clocks = Coded.of(heads), Coded.of(tails)
        day_text = _formatted(days.uniques, date_fmt, "%Y-%m-%d")
        clock_text = _formatted(clocks.uniques, time_fmt, "%H:%M") if time_fmt and with_time else np.full(len(clocks.uniques), "", dtype=object)
        texts = _joined(day_text[days.codes], clock_text[clocks.codes])
        failed = np.flatnonzero((day_text[days.codes] == "") | ((clock_text[clocks.codes] == "") & (tails != "")))
        if len(failed):  # read whole, as _read_months does for such cells
            texts[failed] = _whole_times(coded.uniques[failed], fmt, with_time)
    else:
        texts = _whole_times(coded.uniques, fmt, with_time)
    return np.asarray(texts[coded.codes])


def _formatted(uniques: np.ndarray, fmt: str, out: str) -> np.ndarray:
    if len(uniques) == 0:
        return np.zeros(0, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(pd.Index(uniques, dtype=object), format=fmt, errors="coerce")
        except (ValueError, TypeError, OverflowError):  # e.g. mixed UTC offsets: read whole, one by one
            return np.full(len(uniques), "", dtype=object)
    return np.asarray(pd.Index(parsed.strftime(out)).fillna("").to_numpy(dtype=object))


def _joined(days: np.ndarray, clocks: np.ndarray) -> np.ndarray:
    return np.array([d + "T" + c if c else d for d, c in zip(days.tolist(), clocks.tolist(), strict=True)], dtype=object)


def _whole_times(uniques: np.ndarray, fmt: str, with_time: bool) -> np.ndarray:
    """Whole cells on their own clock (a UTC offset is read, not applied)."""
    out = "%Y-%m-%dT%H:%M" if with_time else "%Y-%m-%d"
    texts = []
    for text in uniques.tolist():
        try:
            stamp = pd.Timestamp(text) if fmt == "ISO8601" else pd.Timestamp(datetime.strptime(text, fmt))
        except (ValueError, TypeError, OverflowError):
            texts.append("")
            continue
        texts.append(stamp.strftime(out))
    return np.array(texts, dtype=object)
