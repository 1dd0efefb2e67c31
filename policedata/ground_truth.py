"""The true outcome probabilities of synthetic incidents, for Bayes-optimal reference scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .loader import require_columns
from .persons import PersonTable, table_from_frame
from .schema import NO_SUSPECT, OUTCOME_CATEGORIES

GIVEN_SUSPECT_FILE = "outcome_given_suspect.csv"


def outcome_probability(
    gt_dir: Path,
    slug: str,
    crime_ids: Sequence[str],
    crime_types: Sequence[str],
    positive: Sequence[str],
) -> np.ndarray:
    """True P(outcome in `positive`) of each incident of agency `slug`:

        [NO_SUSPECT in positive] * p_ns + (1 - p_ns) * sum over c in positive, c != NO_SUSPECT,
        of P(c | crime type, not NO_SUSPECT)

    `gt_dir` is the generator's ``ground_truth`` folder (or the generator's output folder that
    holds it). Raises DataError for an unknown crime id, crime type or outcome category.
    """
    if len(crime_ids) != len(crime_types):
        raise DataError(
            f"{len(crime_ids)} crime ids but {len(crime_types)} crime types; give one of each per incident"
        )
    unknown = [c for c in positive if c not in OUTCOME_CATEGORIES]
    if unknown:
        raise DataError(f"unknown outcome categories {', '.join(repr(c) for c in unknown)}")
    folder = Path(gt_dir)
    if (folder / "ground_truth").is_dir():
        folder = folder / "ground_truth"
    p_ns = _lookup_no_suspect(folder / f"{slug}.csv.gz", crime_ids)

    given_file = folder / GIVEN_SUSPECT_FILE
    given = _read_cached(given_file)
    require_columns(given, ("crime_type", "category", "probability"), given_file)
    others = given[given["category"].isin(set(positive) - {NO_SUSPECT})]
    mass_by_type = others.groupby("crime_type")["probability"].sum()
    types = pd.Series(np.asarray(crime_types, dtype=object))
    known = types.isin(set(given["crime_type"]))
    if not known.all():
        unknown_type = types[~known].iloc[0]
        raise DataError(f"{given_file}: no outcome distribution for crime type '{unknown_type}'")
    mass = types.map(mass_by_type).fillna(0.0).to_numpy(dtype=np.float64)
    return np.asarray(float(NO_SUSPECT in positive) * p_ns + (1 - p_ns) * mass)


def _lookup_no_suspect(file: Path, crime_ids: Sequence[str]) -> np.ndarray:
    table = _read_cached(file)
    require_columns(table, ("Crime ID", "p_no_suspect"), file)
    index = pd.Index(table["Crime ID"])
    position = index.get_indexer(np.asarray(crime_ids, dtype=object))
    missing = position < 0
    if missing.any():
        first = np.asarray(crime_ids, dtype=object)[missing][0]
        raise DataError(
            f"{file}: crime id '{first}' not found ({int(missing.sum())} of {len(position)} ids missing)"
        )
    return np.asarray(table["p_no_suspect"].to_numpy(dtype=np.float64)[position])


def _read_cached(file: Path) -> pd.DataFrame:
    try:
        stat = file.stat()
    except OSError:
        raise DataError(f"{file}: no such ground truth file") from None
    return _read(str(file), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)  # keyed on modification time and size, so a rewritten file is re-read
def _read(file: str, mtime_ns: int, size: int) -> pd.DataFrame:
    try:
        text_columns = {"Crime ID": str, "crime_type": str, "category": str}
        return pd.read_csv(file, dtype=text_columns, keep_default_na=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{file}: cannot be read as a ground truth table ({err})") from None


# Who was involved in each synthetic incident: "agency" (its slug, as the other ground truth
# files name agencies), "Crime ID", "role", "person" (the true identity, e.g. "person-0000042"),
# "home_agency" (slug), "home_area" (LSOA code).
TRUE_PERSONS_FILE = "persons.csv.gz"


@dataclass(frozen=True)
class TruePersons:
    """The true people of a synthetic data set, one row per (record, role)."""

    agency: np.ndarray  # str, slug of the agency that recorded the incident
    table: PersonTable  # Crime ID, role, true identity
    home_agency: np.ndarray  # str, slug
    home_area: np.ndarray  # str, LSOA code

    def of_agency(self, slug: str) -> PersonTable:
        rows = self.agency == slug
        t = self.table
        return PersonTable(t.crime_id[rows], t.role[rows], t.person[rows])


def true_persons(gt_dir: Path) -> TruePersons:
    """The ground truth's persons (`gt_dir`: the ``ground_truth`` folder or the data folder that
    holds it); DataError (one line) if absent or malformed."""
    folder = Path(gt_dir)
    if (folder / "ground_truth").is_dir():
        folder = folder / "ground_truth"
    file = folder / TRUE_PERSONS_FILE
    if not file.is_file():
        raise DataError(f"{file}: no such ground truth file (data generated before persons were added?)")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{file}: cannot be read as a ground truth table ({err})") from None
    require_columns(frame, ("agency", "Crime ID", "role", "person", "home_agency", "home_area"), file)
    return TruePersons(
        frame["agency"].to_numpy(dtype=str),
        table_from_frame(frame, str(file)),
        frame["home_agency"].to_numpy(dtype=str),
        frame["home_area"].to_numpy(dtype=str),
    )
