"""People in police records: who was the victim and who the suspect of each incident, as keys
that link across agencies without saying who anyone is.

INTERFACE (for person-level DP; stable, read this first)
----------------------------------------------------------
Files, per agency folder (only that agency reads them)::

    persons.csv       "Crime ID","role","person"  -- role in ROLES; person = person_key(...)
    federation.key    the federation-wide HMAC secret (hex), shared by the agencies, never by
                      the coordinator; read with read_federation_key(agency_dir)
    (both written by policedata.files.write_persons / write_federation_key)

Loading::

    has_persons(agency_dir) -> bool
    load_persons(agency_dir) -> PersonTable           # DataError (one line) on a bad file
    table.for_records(crime_ids) -> RecordPersons     # aligned with `crime_ids`

Alignment rule: BY CRIME ID. `crime_ids` is any sequence of the records' "Crime ID" values in the
order the task uses them; for a task split whose rows carry `tasks.outcome.record_keys` ("id:<Crime
ID>" / "rec:<hash>"), pass `crime_ids_of_record_keys(split.train_keys)`. A record without a Crime ID
(anti-social behaviour, "rec:" keys) or without an entry for a role gets NO_PERSON (-1) there.
At most one person per (Crime ID, role).

    RecordPersons.keys      np.ndarray[str]  (n_persons,)  code -> person key, sorted, all roles
    RecordPersons.victim    np.ndarray[int64] (n_records,) code into keys, or NO_PERSON
    RecordPersons.suspect   np.ndarray[int64] (n_records,) code into keys, or NO_PERSON
    RecordPersons.of(role)  one of the two above
    RecordPersons.records_per_person(role=None) -> np.ndarray[int64] (n_persons,)  (None: any role)

Codes are local to one call (dense 0..n_persons-1 over the table's keys); the KEYS are what link
across agencies. The same key as victim and as suspect is the same person (one code).

Cross-agency: no agency learns in how many agencies a person appears from the data; the number is
a stated public bound, `privacy.person.max_agencies` (docs/threat-model.md, "People").
The synthetic generator respects it (every person appears in at most MAX_AGENCIES_PER_PERSON = 2
agencies: home and one other, as a border visitor or a mover); the ground truth lets tests check it.

Where persons.csv comes from: the synthetic generator (policedata/synthetic_persons.py draws the
people; the true identity "person-0000042" is hashed), or data.source csv with
data.columns.person (+ person_role): `persons_from_records` hashes the city's identifiers when
`partition.write_agency_folders` writes the agencies' folders, under a fresh secret.

Ground truth (synthetic only, read by evaluation, never by agencies)::

    policedata.ground_truth.true_persons(gt_dir) -> TruePersons     # .table: person = true id
    TruePersons.of_agency(slug) -> PersonTable                      # also .home_agency, .home_area
"""

from __future__ import annotations

import hmac
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .checks import check_regular_file, shorten
from .errors import DataError

ROLES: tuple[str, ...] = ("victim", "suspect")
PERSONS_FILE = "persons.csv"
PERSONS_COLUMNS: tuple[str, ...] = ("Crime ID", "role", "person")
FEDERATION_KEY_FILE = "federation.key"
NO_PERSON = -1
# The synthetic generator's people appear in their home agency and at most one other.
MAX_AGENCIES_PER_PERSON = 2

_KEY_BYTES = 32  # HMAC-SHA256 secret
_PERSON_KEY_BYTES = 16  # a person key: the HMAC truncated to 128 bits
_KEY_TEXT = re.compile(r"[0-9a-f]{64}")
# Domain separation: the same secret used for anything else never yields a person key.
_KEY_CONTEXT = b"peel-person-key/1\x00"


# --- keys -------------------------------------------------------------------------------------


def new_federation_key() -> bytes:
    """A fresh federation secret from the OS CSPRNG (never from a seed: the coordinator knows
    the seed, and whoever knows the secret can test a guessed identity against a key)."""
    return secrets.token_bytes(_KEY_BYTES)


def person_key(secret: bytes, identity: str) -> str:
    """The linkable key of a person: HMAC-SHA256(secret, identity), its first 128 bits in hex
    (collisions are negligible at any federation's size, and files stay smaller). `identity` is what
    identifies the person in an agency's own system (in deployment e.g. a national identifier;
    in the synthetic data the true person id). Same secret, same identity -> same key in every
    agency; without the secret a key says nothing and no guess can be checked."""
    return hmac.digest(secret, _KEY_CONTEXT + identity.encode("utf-8"), "sha256")[:_PERSON_KEY_BYTES].hex()


def person_keys(secret: bytes, identities: Sequence[str] | np.ndarray) -> np.ndarray:
    """`person_key` of each identity (each distinct identity hashed once)."""
    uniques, codes = np.unique(np.asarray(identities, dtype=str), return_inverse=True)
    hashed = np.array([person_key(secret, u) for u in uniques.tolist()], dtype=str)
    return np.asarray(hashed[codes] if len(uniques) else np.array([], dtype=str))


def read_federation_key(agency_dir: Path) -> bytes:
    """The federation secret kept in `agency_dir`; DataError (one line) if absent or malformed."""
    path = Path(agency_dir) / FEDERATION_KEY_FILE
    try:
        if path.exists():
            check_regular_file(path, limit=1024)
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise DataError(f"{path}: no federation key (the secret the agencies share to link person keys)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read as a federation key ({err.__class__.__name__})") from None
    if not _KEY_TEXT.fullmatch(text):
        raise DataError(f"{path}: a federation key is {2 * _KEY_BYTES} lowercase hex characters")
    return bytes.fromhex(text)


# --- tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordPersons:
    """Who is involved in each of a sequence of records (see the module docstring)."""

    keys: np.ndarray  # str (n_persons,), sorted
    victim: np.ndarray  # int64 (n_records,), code into keys or NO_PERSON
    suspect: np.ndarray  # int64 (n_records,)

    def of(self, role: str) -> np.ndarray:
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        return self.victim if role == "victim" else self.suspect

    def records_per_person(self, role: str | None = None) -> np.ndarray:
        """Records each person appears in (as `role`, or in any role: a record where the person
        is both victim and suspect counts once)."""
        n = len(self.keys)
        if role is not None:
            codes = self.of(role)
            return np.bincount(codes[codes >= 0], minlength=n)
        both = self.victim == self.suspect
        return self.records_per_person("victim") + np.bincount(
            self.suspect[(self.suspect >= 0) & ~both], minlength=n
        )


@dataclass(frozen=True)
class PersonTable:
    """Rows (Crime ID, role, person): one agency's persons.csv, or the ground truth."""

    crime_id: np.ndarray  # str
    role: np.ndarray  # str, in ROLES
    person: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.crime_id)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(zip(PERSONS_COLUMNS, (self.crime_id, self.role, self.person), strict=True)))

    def for_records(self, crime_ids: Sequence[str] | np.ndarray) -> RecordPersons:
        """Per record of `crime_ids` (in that order), the code of its victim and its suspect."""
        ids = np.asarray(crime_ids, dtype=str)
        keys, codes = np.unique(self.person, return_inverse=True)
        out = {}
        for role in ROLES:
            rows = self.role == role
            index = pd.Index(self.crime_id[rows])
            if not index.is_unique:
                raise ValueError(f"a Crime ID with two {role}s: a person table holds one person per (Crime ID, role)")
            position = index.get_indexer(ids)
            role_codes = np.append(codes[rows], NO_PERSON)  # position -1 picks the appended NO_PERSON
            code = role_codes[position].astype(np.int64)
            code[ids == ""] = NO_PERSON
            out[role] = code
        return RecordPersons(keys.astype(str), out["victim"], out["suspect"])


def table_from_frame(frame: pd.DataFrame, where: str) -> PersonTable:
    """A PersonTable from a frame with PERSONS_COLUMNS (text); DataError naming `where` and the
    line (header = line 1) of the first problem."""
    missing = [c for c in PERSONS_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column {missing[0]!r}; a persons table has {', '.join(PERSONS_COLUMNS)}")
    text = {c: frame[c].astype("string").fillna("").str.strip().to_numpy(dtype=str) for c in PERSONS_COLUMNS}
    crime_id, role, person = text["Crime ID"], text["role"], text["person"]

    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            raise DataError(f"{where}: line {first + 2}: {what}")

    fail(crime_id == "", "empty Crime ID (a person is linked to a record by its Crime ID)")
    bad_role = ~np.isin(role, ROLES)
    if bad_role.any():
        fail(bad_role, f"role {shorten(str(role[bad_role][0]))} is not one of {', '.join(ROLES)}")
    fail(person == "", "empty person key")
    pair = pd.Series(crime_id + "\x1f" + role)
    fail(pair.duplicated().to_numpy(), "a second person in the same role for one Crime ID (Peel keeps one per role)")
    return PersonTable(crime_id, role, person)


def load_persons(agency_dir: Path) -> PersonTable:
    """The agency's persons.csv; DataError (one line) if it is absent or malformed."""
    path = Path(agency_dir) / PERSONS_FILE
    if not path.exists():
        raise DataError(f"{path}: no persons file; this data set has no person keys (Crime ID, role, person)")
    check_regular_file(path)  # a FIFO or a device is refused before it is opened
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read as a persons table ({err.__class__.__name__})") from None
    return table_from_frame(frame, str(path))


def has_persons(agency_dir: Path) -> bool:
    return (Path(agency_dir) / PERSONS_FILE).is_file()


# data.source csv: columns of the loaded records frame that carry a person's identity as the
# city's export gives it (data.columns.person) and its role (data.columns.person_role). They are
# hashed into persons.csv when the agencies' folders are written and never reach a street file.
IDENTITY = "person"
IDENTITY_ROLE = "person_role"
DEFAULT_ROLE = "victim"  # without data.columns.person_role


def normalise_identity(value: str) -> str:
    """An identity as every agency must spell it before hashing: Unicode NFC, surrounding and
    repeated whitespace removed (case kept: identifiers may be case-sensitive)."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def persons_from_records(records: pd.DataFrame, secret: bytes) -> PersonTable:
    """The persons of a records frame whose IDENTITY column (and optionally IDENTITY_ROLE) holds
    raw identities: one row per record with a Crime ID and a non-empty identity, keyed with
    `person_key`. Roles must already be checked (ROLES, or empty with no identity)."""
    if IDENTITY not in records.columns:
        return PersonTable(np.array([], dtype=str), np.array([], dtype=str), np.array([], dtype=str))
    identity = np.array([normalise_identity(v) for v in records[IDENTITY].astype("string").fillna("").tolist()], dtype=str)
    role = (
        records[IDENTITY_ROLE].astype("string").fillna("").str.strip().str.lower().to_numpy(dtype=str)
        if IDENTITY_ROLE in records.columns
        else np.full(len(records), DEFAULT_ROLE)
    )
    crime_id = records["crime_id"].astype("string").fillna("").to_numpy(dtype=str)
    keep = (identity != "") & (crime_id != "")
    return PersonTable(crime_id[keep], role[keep], person_keys(secret, identity[keep]))


def crime_ids_of_record_keys(record_keys: Sequence[str] | np.ndarray) -> np.ndarray:
    """Crime IDs of `tasks.outcome.record_keys` values: "id:<Crime ID>" -> the id, "rec:..." -> ""."""
    keys = np.asarray(record_keys, dtype=str)
    has_id = np.char.startswith(keys, "id:")
    return np.where(has_id, np.char.replace(keys, "id:", "", count=1), "")
