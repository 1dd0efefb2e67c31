"""Split pooled records into one street-layout folder per agency, so that every agency (a Flower
client) reads only its own folder with the same loader."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DataError
from .files import require_empty_folder, write_federation_key, write_persons, write_street_files
from .persons import IDENTITY, new_federation_key, persons_from_records
from .schema import AGENCY

# Words data.police.uk leaves out of force slugs ("Avon and Somerset Constabulary" ->
# "avon-and-somerset", "Police Service of Northern Ireland" -> "northern-ireland").
_FORCE_WORDS = re.compile(
    r"^(police service of)\s+|\s+(police service|police force|police|constabulary|service)$",
    re.IGNORECASE,
)


# The longest slug: "YYYY-MM-<slug>-street.csv" and the run's per-agency file names stay far
# below the 255-byte limit of a file name, however long an agency's name is.
MAX_SLUG = 64


def slugify(name: str) -> str:
    """A lowercase, filesystem-safe slug of an agency name: "Ashmoor Police" -> "ashmoor"."""
    stripped = _FORCE_WORDS.sub("", name.strip())
    for candidate in (stripped, name):
        slug = re.sub(r"[^a-z0-9]+", "-", candidate.lower()).strip("-")
        if len(slug) > MAX_SLUG:  # a folder or file name has at most 255 bytes; keep names distinct by a hash
            slug = slug[: MAX_SLUG - 9].strip("-") + "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        if slug:
            return slug
    # Nothing usable (e.g. only punctuation or non-Latin letters): a stable name from a hash.
    return "agency-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def write_agency_folders(records: pd.DataFrame, out_dir: Path) -> list[dict[str, Any]]:
    """Write each agency's records to ``out_dir/<slug>/YYYY-MM/YYYY-MM-<slug>-street.csv``.

    `records` is a frame as returned by `policedata.loader.load_street_folder` (normalised
    columns plus `schema.AGENCY`). Files keep the original street columns, so reload a folder
    with the same agency column and pattern that produced `records`. Returns, per agency sorted
    by name, ``{"name", "slug", "folder" (relative to out_dir), "records"}``. Records with raw
    person identities (`persons.IDENTITY`) also give each folder a persons.csv and federation.key.
    """
    out_dir = Path(out_dir)
    if AGENCY not in records.columns:
        raise DataError(f"records to partition into {out_dir}: no '{AGENCY}' column")
    agencies = records[AGENCY].astype(str)
    if (agencies == "").any():
        raise DataError(f"records to partition into {out_dir}: some rows have an empty agency")
    require_empty_folder(out_dir)
    # Raw identities (data.columns.person) leave as keys only, under a secret new to this data set.
    secret = new_federation_key() if IDENTITY in records.columns else None
    owners: dict[str, str] = {}
    result = []
    for name, part in records.groupby(agencies, sort=True):
        slug = slugify(name)
        if slug in owners:
            raise DataError(f"agencies '{owners[slug]}' and '{name}' both map to folder '{slug}'")
        owners[slug] = name
        write_street_files(part, out_dir / slug, slug)
        if secret is not None:
            write_persons(persons_from_records(part, secret), out_dir / slug)
            write_federation_key(out_dir / slug, secret)
        result.append({"name": name, "slug": slug, "folder": slug, "records": len(part)})
    return result
