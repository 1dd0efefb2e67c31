"""Input checks shared by the record loaders (street folders and `data.source: csv`).

Each raises a one-line `DataError` naming the file and line (or the data source) and saying what
to do. They run before or right after parsing, so a bad file is refused before anything is
written.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

# The longest physical line accepted (a real incident row is a few hundred bytes). Checked on
# the raw bytes, so a runaway field cannot exhaust memory or end up quoted in an error message.
MAX_LINE_BYTES = 1 << 20
# Delimiters worth suggesting when a file splits into a single column, as shown to a person.
DELIMITERS = {",": "','", ";": "';'", "\t": '"\\t" (tab)', "|": "'|'"}
_CHUNK = 1 << 24
# The largest input file read (a street file, the areas table). A real monthly street file of
# the largest force is about 25 MB; far beyond that is a mistake, and reading it would exhaust
# the memory of a small machine before any check could run.
MAX_FILE_BYTES = 512 * 1024 * 1024
# The earliest month Peel accepts in data (data.police.uk starts in 2010; older records are a
# typo such as 0000-01 or 1023-04, and would move the train/test split).
FIRST_MONTH = "2000-01"


def latest_month() -> str:
    """The current month (UTC), "YYYY-MM": data cannot describe crimes after it."""
    now = datetime.now(UTC)
    return f"{now.year:04d}-{now.month:02d}"


def implausible_month(month: str, latest: str | None = None) -> str | None:
    """Why a well-formed "YYYY-MM" `month` cannot be a month of real records, or None."""
    latest = latest or latest_month()
    if month < FIRST_MONTH:
        return f"is before {FIRST_MONTH}; is the year mistyped?"
    if month > latest:
        return f"is after the current month {latest}; is the year mistyped?"
    return None


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> int:
    """Refuse, before opening it, anything at `path` (symlinks followed) that is not a readable
    regular file of at most `limit` bytes: opening a FIFO blocks forever and /dev/zero never
    ends. Returns the size."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (a broken symlink?)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise DataError(f"{path}: is {kind}, not a regular file; Peel reads only regular files")
    if info.st_size > limit:
        raise DataError(f"{path}: {info.st_size:,} bytes; a file may be at most {limit:,} bytes (split it, e.g. by month)")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: cannot be read (permission denied)")
    return info.st_size


def shorten(value: object, limit: int = 60) -> str:
    """A value quoted for a message, cut short so one bad cell cannot flood the message."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def check_line_lengths(data: bytes, path: Path, limit: int = MAX_LINE_BYTES, first_line: int = 1) -> None:
    """Refuse a physical line of `data` (the bytes of `path`) longer than `limit` bytes."""
    if len(data) <= limit:
        return
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    lengths = np.diff(np.concatenate(([-1], ends, [len(data)]))) - 1
    longest = int(np.argmax(lengths))
    if lengths[longest] > limit:
        _too_long(path, first_line + longest, int(lengths[longest]), limit)


def check_file_lines(path: Path, limit: int = MAX_LINE_BYTES) -> str:
    """`check_line_lengths` for a file on disk, read in chunks (memory stays bounded whatever
    the file holds). Returns the SHA-256 of its bytes (to find a file present twice)."""
    line, run = 1, 0  # the current line's number, and its bytes seen so far
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
                if len(ends):
                    lengths = np.diff(np.concatenate(([-1], ends))) - 1
                    lengths[0] += run
                    over = np.flatnonzero(lengths > limit)
                    if len(over):
                        _too_long(path, line + int(over[0]), int(lengths[over[0]]), limit)
                    line += len(ends)
                    run = len(chunk) - int(ends[-1]) - 1
                else:
                    run += len(chunk)
                if run > limit:  # the current line is already too long: measure it to its end
                    while (rest := fh.read(_CHUNK)) and (end := rest.find(b"\n")) < 0:
                        run += len(rest)
                    _too_long(path, line, run + (end if rest else 0), limit)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    return digest.hexdigest()


def _too_long(path: Path, line: int, size: int, limit: int) -> None:
    raise DataError(
        f"{path}: line {line} is {size / 1e6:.1f} MB long; a line may be at most {limit / 1e6:.1f} MB "
        "(is a quote left open, or a field pasted in by mistake?)"
    )


def delimiter_hint(header: str, delimiter: str = ",") -> str:
    """For a header that split into one column: "; it seems to use ';' as delimiter" (or "")."""
    seen = [d for d in DELIMITERS if d != delimiter and d in header]
    if not seen:
        return ""
    return f"; it seems to use {DELIMITERS[max(seen, key=header.count)]} as delimiter, not {DELIMITERS.get(delimiter, repr(delimiter))}"


def check_unique_crime_ids(frames: Sequence[pd.DataFrame], files: Sequence[Path], column: str = "crime_id") -> None:
    """Crime IDs must be unique across all files (empty IDs, as anti-social behaviour has, are
    allowed). Names both lines (header = line 1) of the first repeat."""
    ids = pd.concat([f[column] for f in frames], ignore_index=True)
    given = (ids != "").to_numpy()
    repeated = ids.duplicated().to_numpy() & given
    if not repeated.any():
        return
    sizes = np.cumsum([0, *(len(f) for f in frames)])
    second = int(np.argmax(repeated))
    first = int(np.argmax((ids == ids.iloc[second]).to_numpy()))

    def where(i: int) -> str:
        k = int(np.searchsorted(sizes, i, side="right")) - 1
        return f"{files[k]}: line {i - sizes[k] + 2}"

    raise DataError(f"{where(second)}: Crime ID {shorten(ids.iloc[second])} also appears at {where(first)}; Crime IDs must be unique")


def require_trainable_agencies(per_agency: dict[str, int], source: str) -> None:
    """Every agency needs records to train on and to test on: refuse one with fewer than 2."""
    for name, count in per_agency.items():
        if count <= 1:
            raise DataError(
                f"{source}: agency {shorten(name)} has only {count} record{'' if count == 1 else 's'}: an agency needs "
                "records to train on and to test on; remove it from the data or merge it into another agency"
            )
