"""How policedata/csv_source.py holds a column and names a bad cell: a column as its distinct
values plus one code per row (`Coded`: stripping, value maps and checks run once per distinct
value), and `Where`, which names the file, spreadsheet row and column of a cell."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError


@dataclass(frozen=True)
class Coded:
    """A text column as its distinct values and one code per row (codes number the values in
    order of first appearance, as pandas.factorize does)."""

    codes: np.ndarray
    uniques: np.ndarray  # object array of str

    @classmethod
    def of(cls, raw: np.ndarray, strip: bool = True) -> Coded:
        codes, uniques = pd.factorize(raw)
        uniques = np.asarray(uniques, dtype=object)
        coded = cls(codes, uniques)
        if strip:
            stripped = np.array([u.strip() for u in uniques.tolist()], dtype=object)
            if len(stripped) and (stripped != uniques).any():
                coded = coded._merged(stripped)
        return coded

    def nfc(self) -> Coded:
        """The distinct values in Unicode NFC (merging values that differ only in form)."""
        normal = np.array([unicodedata.normalize("NFC", u) for u in self.uniques.tolist()], dtype=object)
        return self._merged(normal) if len(normal) and (normal != self.uniques).any() else self

    def translated(self, mapping: dict[str, str] | None) -> Coded:
        if not mapping:
            return self
        return self._merged(np.array([mapping.get(u, u) for u in self.uniques.tolist()], dtype=object))

    def _merged(self, new_uniques: np.ndarray) -> Coded:
        """Replace the distinct values, merging those that became equal."""
        codes, uniques = pd.factorize(new_uniques)
        return Coded(codes[self.codes], np.asarray(uniques, dtype=object))

    def values(self) -> np.ndarray:
        return np.asarray(self.uniques[self.codes])

    def rows_where(self, bad_values: np.ndarray) -> np.ndarray:
        """Per row: is its value one of the `bad_values` (a mask over `uniques`)?"""
        return np.asarray(bad_values, dtype=bool)[self.codes] if np.any(bad_values) else np.zeros(len(self.codes), dtype=bool)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.uniques))


@dataclass(frozen=True)
class Where:
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
