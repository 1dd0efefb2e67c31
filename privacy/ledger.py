"""An agency's privacy budget ledger: one SQLite file per agency, owned and kept by the agency.

It holds one row per release (what DP-SGD ran: σ, sample rate, steps; for which run, architecture
and round), the agency's budget with every change to it, and resets. The spend is always
recomputed from the releases with an accountant; the ε stored beside each release is for people
reading the file, never trusted over the recomputation.

`charge` is the call an agency makes before an update leaves it: it computes ε after the
release, refuses (BudgetExceeded, nothing written) if that passes the budget, and otherwise
commits the row durably before returning. A crash between the commit and the send over-counts;
nothing can under-count.

Durability: `PRAGMA synchronous=FULL` and the rollback journal (`journal_mode=DELETE`). Both
DELETE and WAL survive a killed process (a committed transaction is on disk, an interrupted one
is rolled back by the next opener); DELETE is chosen because the ledger stays one
self-contained file (no -wal/-shm companions to lose when an agency copies or backs it up) and it
works on network filesystems, where WAL's shared-memory index does not. Its cost, readers
waiting during a commit, is milliseconds here; two processes on one file wait for each other
(busy timeout) instead of failing.
"""

from __future__ import annotations

import getpass
import math
import os
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from privacy.accounting import Release, check_release, epsilon, resolve_accountant
from privacy.budget import epsilon_after

LEDGER_FILENAME = "ledger.sqlite"  # the name `peel budget` looks for, at any depth
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 60.0  # a charge holds the write lock while its accountant runs
_FORMAT = "peel-ledger"

_SCHEMA = [
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
        recorded_at TEXT NOT NULL)""",
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
    # The ledger is append-only: a spend, a budget change or a reset is never edited away.
    *(
        f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        for table in ("releases", "budget", "resets")
        for verb in ("update", "delete")
    ),
]

# Releases counted by the spend: those after the latest reset.
_CUTOFF = "COALESCE((SELECT after_release_id FROM resets ORDER BY id DESC LIMIT 1), 0)"


class LedgerError(Exception):
    """A ledger file cannot be used (the message names the file and why)."""


class ConfirmationRequired(LedgerError):
    """A destructive action was asked for without explicit confirmation."""


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def default_actor() -> str:
    """Who is acting, for the resets table: user@host (pid)."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown-user"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def _error(path: Path, exc: sqlite3.Error) -> LedgerError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return LedgerError(f"{path}: ledger busy: another process held it for over {BUSY_TIMEOUT_SECONDS:g} s")
    return LedgerError(f"{path}: unreadable or corrupt ledger ({exc})")


class Ledger:
    """One agency's ledger file. Open with `Ledger.open(path, agency)` (creates it) or
    `Ledger.inspect(path)` (an existing ledger, whatever its agency); use as a context manager
    or call `close()`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, agency: str) -> None:
        self._conn = conn
        self.path = path
        self.agency = agency

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str, agency: str) -> Ledger:
        """The ledger of `agency` at `path`, created if the file does not exist. Raises
        LedgerError for a file of another agency, a corrupt file or a file that is not a ledger."""
        if not agency or not agency.strip():
            raise LedgerError(f"{path}: a ledger needs an agency name")
        return cls._open(Path(path), agency, create=True)

    @classmethod
    def inspect(cls, path: Path | str) -> Ledger:
        """An existing ledger file, whichever agency it belongs to (for `peel budget`)."""
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger file there")
        return cls._open(path, None, create=False)

    @classmethod
    def _open(cls, path: Path, agency: str | None, *, create: bool) -> Ledger:
        if path.is_dir():
            raise LedgerError(f"{path}: is a folder, not a ledger file")
        if not path.parent.is_dir():
            raise LedgerError(f"{path}: folder {path.parent} does not exist")
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        except sqlite3.Error as exc:
            raise _error(path, exc) from None
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
                stored = cls._schema(conn, path, agency, create=create)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise _error(path, exc) from None
        except LedgerError:
            conn.close()
            raise
        return cls(conn, path, stored)

    @staticmethod
    def _schema(conn: sqlite3.Connection, path: Path, agency: str | None, *, create: bool) -> str:
        """Create the schema in an empty file, or check the file's: returns its agency."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            if not create or agency is None:
                raise LedgerError(f"{path}: empty file, not a Peel ledger")
            for statement in _SCHEMA:  # not executescript(): it would commit the transaction
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format", _FORMAT), ("schema_version", str(SCHEMA_VERSION)), ("agency", agency), ("created_at", _now())],
            )
            return agency
        if "meta" not in tables:
            raise LedgerError(f"{path}: an SQLite file that is not a Peel ledger")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != _FORMAT:
            raise LedgerError(f"{path}: an SQLite file that is not a Peel ledger")
        version = meta.get("schema_version", "?")
        if version != str(SCHEMA_VERSION):
            raise LedgerError(f"{path}: ledger schema version {version}, this Peel reads version {SCHEMA_VERSION}")
        if agency is not None and meta.get("agency") != agency:
            raise LedgerError(f"{path}: ledger of agency {meta.get('agency')!r}, not {agency!r}")
        return meta["agency"]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction holding the lock from the first read (BEGIN IMMEDIATE), so two
        processes cannot both charge against the same spend."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from None
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise _error(self.path, exc) from None

    def _query(self, sql: str, params: Sequence = ()) -> list[dict]:
        try:
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from None

    # --- reading ---------------------------------------------------------------------------
    def history(self) -> list[Release]:
        """Releases since the latest reset, in the order they were charged."""
        rows = self._query(f"SELECT sigma, sample_rate, steps FROM releases WHERE id > {_CUTOFF} ORDER BY id")
        return [(r["sigma"], r["sample_rate"], r["steps"]) for r in rows]

    def _last_after(self, counted: int, delta: float, accountant: str) -> float | None:
        """ε after the latest counted release, when it was computed the same way (same δ and
        accountant): the `epsilon_before` of the next row, saving one accountant call. The
        budget check itself always recomputes."""
        if counted == 0:
            return 0.0
        rows = self._query(f"SELECT epsilon_after, delta, accountant FROM releases WHERE id > {_CUTOFF} ORDER BY id DESC LIMIT 1")
        if rows and rows[0]["delta"] == float(delta) and rows[0]["accountant"] == accountant:
            return float(rows[0]["epsilon_after"])
        return None

    def spent(self, delta: float, accountant: str = "auto") -> float:
        """ε spent since the latest reset, recomputed from the releases."""
        return epsilon(self.history(), delta, accountant)

    def budget(self) -> Budget | None:
        """The agency's current budget (its latest setting), or None if never set."""
        rows = self._query("SELECT epsilon, delta, source, recorded_at FROM budget ORDER BY id DESC LIMIT 1")
        return Budget(**rows[0]) if rows else None

    def budget_changes(self) -> list[Budget]:
        return [Budget(**r) for r in self._query("SELECT epsilon, delta, source, recorded_at FROM budget ORDER BY id")]

    def resets(self) -> list[Reset]:
        return [Reset(**r) for r in self._query("SELECT after_release_id, reason, actor, recorded_at FROM resets ORDER BY id")]

    def rows(self) -> list[dict]:
        """Every release ever charged, oldest first; `counted` is False for those before the
        latest reset."""
        return self._query(f"SELECT *, id > {_CUTOFF} AS counted FROM releases ORDER BY id")

    # --- writing ---------------------------------------------------------------------------
    def set_budget(self, epsilon: float, delta: float, source: str) -> bool:
        """Record the agency's budget (ε, δ) and where it came from. Recorded only if it differs
        from the current one; returns whether it did."""
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"budget ε must be a finite number > 0, got {epsilon!r}")
        if not 0 < delta < 1:
            raise ValueError(f"budget δ must be in (0, 1), got {delta!r}")
        if not source.strip():
            raise ValueError("a budget change needs a source (e.g. the config it came from)")
        with self._write():
            current = self.budget()
            if current is not None and (current.epsilon, current.delta) == (float(epsilon), float(delta)):
                return False
            self._conn.execute(
                "INSERT INTO budget (epsilon, delta, source, recorded_at) VALUES (?, ?, ?, ?)",
                (float(epsilon), float(delta), source, _now()),
            )
        return True

    def charge(
        self,
        run_id: str,
        architecture: str,
        round: int,
        release: Release,
        *,
        delta: float,
        accountant: str,
        budget: float,
    ) -> float:
        """Charge one release before its update leaves the agency: returns ε after it, committed
        to disk. Raises BudgetExceeded (and writes nothing) if ε after would pass `budget`."""
        checked = check_release(release)
        name = resolve_accountant(accountant)
        with self._write():
            history = self.history()
            before = self._last_after(len(history), delta, name)
            if before is None:
                before = epsilon(history, delta, name)
            after = epsilon_after(history, checked, budget=budget, delta=delta, accountant=name)
            self._conn.execute(
                "INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before,"
                " epsilon_after, delta, accountant, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(run_id), str(architecture), int(round), *checked, before, after, float(delta), name, _now()),
            )
        return after

    def reset(self, reason: str, *, confirm: bool, actor: str | None = None) -> Reset:
        """Start counting the spend afresh. Refused unless `confirm` is True; recorded with
        `reason` and who did it. Earlier releases stay in the file (listed by `rows()`)."""
        if confirm is not True:
            raise ConfirmationRequired(
                f"{self.path}: refusing to reset the privacy ledger of {self.agency} without explicit confirmation"
            )
        if not reason or not reason.strip():
            raise LedgerError(f"{self.path}: a reset needs a reason")
        with self._write():
            (last,) = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM releases").fetchone()
            reset = Reset(int(last), reason.strip(), actor or default_actor(), _now())
            self._conn.execute(
                "INSERT INTO resets (after_release_id, reason, actor, recorded_at) VALUES (?, ?, ?, ?)",
                (reset.after_release_id, reset.reason, reset.actor, reset.recorded_at),
            )
        return reset
