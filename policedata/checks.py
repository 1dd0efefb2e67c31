"""Input checks shared by the record loaders (street folders and `data.source: csv`).

Each raises a one-line `DataError` naming the file and line (or the data source) and saying what
to do. They run before or right after parsing, so a bad file is refused before anything is
written.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def check_file_lines(path: Path, limit: int = MAX_LINE_BYTES) -> None:
    """`check_line_lengths` for a file on disk, read in chunks (memory stays bounded whatever
    the file holds)."""
    line, run = 1, 0  # the current line's number, and its bytes seen so far
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
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
