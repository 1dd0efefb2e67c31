"""The true outcome probabilities of synthetic incidents, for Bayes-optimal reference scores."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .loader import require_columns
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
