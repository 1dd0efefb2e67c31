"""The ledger file's schema: its tables (append-only by trigger), the version 1 → 2 → 3 migrations,
the records its rows read into, and the errors a ledger raises. `privacy/ledger.py` is the API."""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 3
DEFAULT_MECHANISM = "subsampled-gaussian"
BUSY_TIMEOUT_SECONDS = 60.0  # a charge holds the write lock while its accountant runs
FORMAT = "peel-ledger"

REINITS = [
    """CREATE TABLE reinits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        previous_ledger_id TEXT,
        previous_releases INTEGER NOT NULL,
        previous_head TEXT NOT NULL,
        carried_releases INTEGER NOT NULL,
        found TEXT NOT NULL,
        kept_as TEXT,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        recorded_at TEXT NOT NULL)""",
    *(
        f"CREATE TRIGGER reinits_no_{verb} BEFORE {verb.upper()} ON reinits "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        for verb in ("update", "delete")
    ),
]

SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE releases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        architecture TEXT NOT NULL,
        round INTEGER NOT NULL,
        sigma REAL NOT NULL CHECK (sigma >= 0),
        sample_rate REAL NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1),
        steps INTEGER NOT NULL CHECK (steps >= 0),
        epsilon_before REAL NOT NULL,
        epsilon_after REAL NOT NULL,
        delta REAL NOT NULL,
        accountant TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        mechanism TEXT NOT NULL DEFAULT 'subsampled-gaussian',
        kind TEXT,
        sensitivity REAL CHECK (sensitivity IS NULL OR sensitivity > 0))""",
    """CREATE TABLE budget (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        epsilon REAL NOT NULL CHECK (epsilon > 0),
        delta REAL NOT NULL CHECK (delta > 0 AND delta < 1),
        source TEXT NOT NULL,
        recorded_at TEXT NOT NULL)""",
    """CREATE TABLE resets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        after_release_id INTEGER NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        recorded_at TEXT NOT NULL)""",
    *REINITS,
    # The ledger is append-only: a spend, a budget change or a reset is never edited away.
    *(
        f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        for table in ("releases", "budget", "resets")
        for verb in ("update", "delete")
    ),
]
# Version 1 → 2: the mechanism column, the reinits table, a creation id and the pinned δ.
MIGRATE_V1 = [f"ALTER TABLE releases ADD COLUMN mechanism TEXT NOT NULL DEFAULT '{DEFAULT_MECHANISM}'", *REINITS]
# Version 2 → 3: a release's accounting kind and sensitivity (privacy/mechanisms.py). NULL in both
# is a (σ, q, steps) subsampled-Gaussian release, whatever its mechanism label: every older row.
MIGRATE_V2 = ["ALTER TABLE releases ADD COLUMN kind TEXT", "ALTER TABLE releases ADD COLUMN sensitivity REAL CHECK (sensitivity IS NULL OR sensitivity > 0)"]

# Releases counted by the spend: those after the latest reset.
CUTOFF = "COALESCE((SELECT after_release_id FROM resets ORDER BY id DESC LIMIT 1), 0)"


class LedgerError(Exception):
    """A ledger file cannot be used (the message names the file and why)."""


class ConfirmationRequired(LedgerError):
    """A destructive action was asked for without explicit confirmation."""


class DeltaMismatch(LedgerError):
    """A charge or budget at a δ other than the one the ledger's first charge pinned."""


class RelationMismatch(LedgerError):
    """A charge under another neighbouring relation than the one the ledger's first charge pinned."""


class LedgerLost(LedgerError):
    """The ledger is missing, emptied, replaced or cut back against its anchor: refused until
    it is restored or explicitly re-initialised (`Ledger.reinitialise`). `what` says which."""

    def __init__(self, message: str, what: str = "") -> None:
        super().__init__(message)
        self.what = what


@dataclass(frozen=True)
class Budget:
    epsilon: float
    delta: float
    source: str
    recorded_at: str


@dataclass(frozen=True)
class Reset:
    after_release_id: int  # releases up to this id no longer count
    reason: str
    actor: str
    recorded_at: str


@dataclass(frozen=True)
class Reinit:
    previous_ledger_id: str | None
    previous_releases: int
    previous_head: str
    carried_releases: int
    found: str  # what was in the ledger's place: missing, emptied, replaced, truncated
    kept_as: str | None  # where that file was moved (kept as evidence), if there was one
    reason: str
    actor: str
    recorded_at: str


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def sql_error(path: Path, exc: sqlite3.Error) -> LedgerError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return LedgerError(f"{path}: ledger busy: another process held it for over {BUSY_TIMEOUT_SECONDS:g} s")
    return LedgerError(f"{path}: unreadable or corrupt ledger ({exc})")



def create_schema(conn: sqlite3.Connection, agency: str, *, delta: float | None = None) -> None:
    """The tables and meta rows of a new ledger, inside the caller's transaction."""
    for statement in SCHEMA:  # not executescript(): it would commit the transaction
        conn.execute(statement)
    meta = [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION)), ("agency", agency), ("created_at", utc_now()), ("ledger_id", uuid.uuid4().hex)]
    if delta is not None:
        meta.append(("delta", repr(float(delta))))
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta)


def check_schema(conn: sqlite3.Connection, path: Path, agency: str | None, *, create: bool, lost_if_empty: LedgerLost | None = None) -> tuple[str, int]:
    """Create the schema in an empty file, or check the file's (migrating a version-1 file
    when writing): returns its agency and schema version. `lost_if_empty` is raised for a file
    with no tables where an anchor says releases were recorded."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        if lost_if_empty is not None:  # an anchor recorded releases here
            raise lost_if_empty
        if not create or agency is None:
            raise LedgerError(f"{path}: empty file, not a Peel ledger")
        create_schema(conn, agency)
        return agency, SCHEMA_VERSION
    if "meta" not in tables:
        raise LedgerError(f"{path}: an SQLite file that is not a Peel ledger")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != FORMAT:
        raise LedgerError(f"{path}: an SQLite file that is not a Peel ledger")
    version = meta.get("schema_version", "?")
    if version not in ("1", "2", str(SCHEMA_VERSION)):
        raise LedgerError(f"{path}: ledger schema version {version}, this Peel reads versions 1 to {SCHEMA_VERSION}")
    if agency is not None and meta.get("agency") != agency:
        raise LedgerError(f"{path}: ledger of agency {meta.get('agency')!r}, not {agency!r}")
    if version == "1" and create:
        for statement in MIGRATE_V1:
            conn.execute(statement)
        first = conn.execute("SELECT delta FROM releases ORDER BY id LIMIT 1").fetchone()
        updates = [("schema_version", "2"), ("ledger_id", uuid.uuid4().hex), ("migrated_at", utc_now())]
        if first is not None:
            updates.append(("delta", repr(float(first[0]))))  # an old ledger's δ: its first charge's
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", updates)
        version = "2"
    if version == "2" and create:
        for statement in MIGRATE_V2:
            conn.execute(statement)
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [("schema_version", str(SCHEMA_VERSION)), ("migrated_at", utc_now())])
        version = str(SCHEMA_VERSION)
    return meta["agency"], int(version)


def connect(path: Path, agency: str | None, *, create: bool, lost_if_empty: LedgerLost | None = None) -> tuple[sqlite3.Connection, str, int]:
    """A connection to the ledger file at `path` with its durability settings, integrity-checked
    and its schema checked (created or migrated when `create`): the connection, the file's
    agency and its schema version."""
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    except sqlite3.Error as exc:
        raise sql_error(path, exc) from None
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=FULL")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise LedgerError(f"{path}: corrupt ledger (SQLite integrity check: {check})")
        # Schema check and creation in one transaction: a crash half-way leaves an empty file.
        # Only a writer takes the write lock up front (two creators must not race).
        conn.execute("BEGIN IMMEDIATE" if create else "BEGIN")
        try:
                    stored, version = check_schema(conn, path, agency, create=create, lost_if_empty=lost_if_empty)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        raise sql_error(path, exc) from None
    except LedgerError:
        conn.close()
        raise
    return conn, stored, version


def default_actor() -> str:
    """Who is acting, for the resets table: user@host (pid)."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown-user"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"
