"""Histograms with the person as the unit (issue 17 item 4): each person's contribution to one
histogram is bounded, and the sensitivity of the release follows from the bounds.

Who a record counts for is training's rule (privacy.person_unit, privacy.person_clip.owners): its
victim, else its suspect, else nobody — then the record is a person of its own. A person's records
that one histogram counts are taken in the order of the HMAC of their record id (training's
`selection_rank`, unpredictable without the agencies' secret) and kept greedily under three caps:

1. `max_cells` k: only records in the person's first k cells (cells in order of their first record);
2. `max_per_cell` c: at most c records in one cell;
3. `max_records` m: at most m records in all — privacy.person.max_records, the number training
   caps a person's records at (one definition; training applies it to the agency's training
   records, analytics to each histogram's records, since each release is charged on its own).

The rule reads only that person's own records, so adding or removing one person changes no other
person's kept records. Adding or removing one person then moves a count histogram by an integer
vector v with Σv ≤ m, at most k non-zero entries, each ≤ c; the largest ‖v‖₂ is reached by filling
cells with c (`l2_records`): ‖v‖₂² ≤ j·c² + r², j = min(k, ⌊m/c⌋), r = min(c, m − j·c) if j < k.
A sum histogram's entries are those counts times at most QUANTA fixed-point steps.

Accounting. The release's noise is independent per cell, so its privacy loss for a shift v is
that of the linear statistic ⟨v, X⟩; for the continuous Gaussian it depends on ‖v‖₂ alone. For
the discrete Gaussian, Canonne, Kamath and Steinke (2020, Thm 14) prove the same concentrated DP
as the continuous one at ‖v‖₂; the (ε, δ) curve is charged as the one-dimensional discrete
Gaussian at the integer shift ⌈‖v‖₂⌉ (the ledger's exact PLD), an assumption checked
numerically, not proven in general: tests/test_analytics_person.py composes the exact PLD of every
shift vector the caps allow and finds each below the charged curve (docs/threat-model.md says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from policedata.persons import load_persons, read_federation_key
from privacy.person_clip import bound_contributions, owners, selection_rank

__all__ = ["PersonBounds", "PersonCaps", "cell_caps", "l2_records", "person_bounds", "sensitivity"]


@dataclass(frozen=True)
class PersonCaps:
    """The per-person caps of a person-level histogram (see the module docstring)."""

    max_records: int
    max_cells: int | None = None  # None: no cap beyond max_records
    max_per_cell: int | None = None  # None: no cap beyond max_records

    def __post_init__(self) -> None:
        for name in ("max_records", "max_cells", "max_per_cell"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"person cap {name} must be a whole number ≥ 1, got {value!r}")

    @property
    def cells(self) -> int:
        return min(self.max_cells or self.max_records, self.max_records)

    @property
    def per_cell(self) -> int:
        return min(self.max_per_cell or self.max_records, self.max_records)


def l2_records(caps: PersonCaps) -> float:
    """The largest ‖v‖₂ of one person's record counts over a histogram's cells under `caps`."""
    m, k, c = caps.max_records, caps.cells, caps.per_cell
    full = min(k, m // c)
    rest = min(c, m - full * c) if full < k else 0
    return math.sqrt(full * c * c + rest * rest)


def sensitivity(caps: PersonCaps, steps_per_record: int) -> int:
    """The integer sensitivity charged for a histogram whose record moves it by at most
    `steps_per_record`: ⌈‖v‖₂ × steps⌉ (a tiny margin absorbs float error in √)."""
    return max(1, math.ceil(l2_records(caps) * steps_per_record - 1e-9))


@dataclass(frozen=True)
class PersonBounds:
    """One agency's records as persons: `unit[i]` is record i's person (0..n-1, a record without
    a person being one of its own); `rank` orders a person's records (HMAC of the record id)."""

    unit: np.ndarray  # int64 (n_records,)
    rank: np.ndarray  # S32 (n_records,)
    caps: PersonCaps


def person_bounds(records: pd.DataFrame, folder: Path, caps: PersonCaps) -> PersonBounds:
    """The agency's records (loaded from `folder`, aligned by Crime ID with its persons.csv) as
    capped persons. DataError (one line) if persons.csv or federation.key is missing or bad."""
    crime_ids = records["crime_id"].astype(str).to_numpy() if len(records) else np.array([], dtype=str)
    persons = load_persons(folder).for_records(crime_ids)
    secret = read_federation_key(folder)
    # Distinct ids: a Crime ID, else the row (records without one are anti-social behaviour and
    # have no person: each is a person of its own, never capped, so their id orders nothing).
    ids = np.where(crime_ids != "", np.char.add("id:", crime_ids), np.char.add("row:", np.arange(len(records)).astype(str)))
    # Dense person codes (no cap here: the caps apply per histogram, `cell_caps`).
    every = bound_contributions(owners(persons.victim, persons.suspect), ids, max(1, len(ids)), secret)
    return PersonBounds(every.unit, selection_rank(secret, ids), caps)


def cell_caps(bounds: PersonBounds, cell: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Which records of one histogram count (bool per record): counted by the histogram
    (`counted`, `cell` its cell), in the person's first `max_cells` cells, among the first
    `max_per_cell` records of their cell, and among the first `max_records` such records — all in
    rank order (the greedy rule of the module docstring, vectorised: a cell is touched by its
    first record, which the cell caps always keep, so filtering cells first and truncating to m
    after keeps what the greedy pass keeps)."""
    candidate = counted & (bounds.unit >= 0)
    rows = np.flatnonzero(candidate)
    if rows.size == 0:
        return candidate
    frame = pd.DataFrame({"unit": bounds.unit[rows], "cell": cell[rows], "rank": bounds.rank[rows], "row": rows})
    frame = frame.sort_values(["unit", "rank"], kind="stable")
    position = frame.groupby(["unit", "cell"], sort=False).cumcount().to_numpy()
    first = position == 0
    order = pd.Series(first.astype(np.int64), index=frame.index).groupby(frame["unit"].to_numpy()).cumsum().to_numpy() - 1
    cell_rank = pd.Series(np.where(first, order, 0), index=frame.index).groupby([frame["unit"].to_numpy(), frame["cell"].to_numpy()]).transform("max").to_numpy()
    eligible = (cell_rank < bounds.caps.cells) & (position < bounds.caps.per_cell)
    nth = pd.Series(eligible.astype(np.int64), index=frame.index).groupby(frame["unit"].to_numpy()).cumsum().to_numpy()  # 1-based among eligible
    keep_rows = frame["row"].to_numpy()[eligible & (nth <= bounds.caps.max_records)]
    keep = np.zeros(len(candidate), dtype=bool)
    keep[keep_rows] = True
    return keep
