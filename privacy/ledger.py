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

δ is pinned by the first charge: ε is only comparable with a budget at one δ, so a charge or a
budget at another δ is refused (DeltaMismatch) and every ε is reported at the pinned δ.

Anchoring: a ledger that disappears must not start over. After every change (charge, reset,
budget) an anchor file beside it (`<stem>.anchor.json`) records the ledger's creation id, its
release count, the hash-chain head of its releases and the releases themselves (run-length
coded σ, q, steps). Opening refuses (LedgerLost) a ledger that is missing, emptied, replaced or
holds fewer or other releases than its anchor records; `Ledger.reinitialise` is the one way
past that, recorded in the new ledger, which starts with the anchored releases carried over as
its first rows, so the spend stays spent. An anchor that records no release binds nothing.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from privacy.accounting import ADD_REMOVE, Release, check_release, epsilon, resolve_accountant
from privacy.budget import epsilon_after
from privacy.durable import replace_durably

LEDGER_FILENAME = "ledger.sqlite"  # the name `peel budget` looks for, at any depth
ANCHOR_SUFFIX = ".anchor.json"  # `<ledger stem>.anchor.json`, beside the ledger
SCHEMA_VERSION = 2
DEFAULT_MECHANISM = "subsampled-gaussian"
CARRIED_RUN = "carried-over"  # run_id of the releases a re-initialised ledger starts with
BUSY_TIMEOUT_SECONDS = 60.0  # a charge holds the write lock while its accountant runs
_FORMAT = "peel-ledger"
_ANCHOR_FORMAT = "peel-ledger-anchor"
_GENESIS = "0" * 64

_REINITS = [
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
        recorded_at TEXT NOT NULL,
        mechanism TEXT NOT NULL DEFAULT 'subsampled-gaussian')""",
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
    *_REINITS,
    # The ledger is append-only: a spend, a budget change or a reset is never edited away.
    *(
        f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        for table in ("releases", "budget", "resets")
        for verb in ("update", "delete")
    ),
]
# Version 1 → 2: the mechanism column, the reinits table, a creation id and the pinned δ.
_MIGRATE_V1 = [f"ALTER TABLE releases ADD COLUMN mechanism TEXT NOT NULL DEFAULT '{DEFAULT_MECHANISM}'", *_REINITS]

# Releases counted by the spend: those after the latest reset.
_CUTOFF = "COALESCE((SELECT after_release_id FROM resets ORDER BY id DESC LIMIT 1), 0)"


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


def anchor_path(ledger: Path | str) -> Path:
    """The anchor file of a ledger: `<stem>.anchor.json` beside it."""
    ledger = Path(ledger)
    return ledger.with_name(ledger.stem + ANCHOR_SUFFIX)


def ledger_of_anchor(anchor: Path | str) -> Path:
    """The ledger file an anchor stands for (its name is recorded inside; the default one's
    otherwise)."""
    anchor = Path(anchor)
    try:
        name = json.loads(anchor.read_text(encoding="utf-8")).get("ledger")
    except (OSError, ValueError, AttributeError):
        name = None
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        name = anchor.name[: -len(ANCHOR_SUFFIX)] + ".sqlite"
    return anchor.with_name(name)


def chain_head(rows: Sequence[dict[str, Any]]) -> str:
    """Hash chain over release rows, oldest first: what an anchor pins."""
    head = _GENESIS
    for r in rows:
        fields = [
            r["id"], r["run_id"], r["architecture"], r["round"], float(r["sigma"]), float(r["sample_rate"]), r["steps"],
            float(r["delta"]), r["accountant"], r.get("mechanism", DEFAULT_MECHANISM), r["recorded_at"],
        ]
        head = hashlib.sha256((head + json.dumps(fields, ensure_ascii=True, separators=(",", ":"))).encode()).hexdigest()
    return head


def _runs(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Releases run-length coded: [[σ, q, steps, mechanism, count], ...] in order."""
    coded: list[list[Any]] = []
    for r in rows:
        key = [float(r["sigma"]), float(r["sample_rate"]), int(r["steps"]), r.get("mechanism", DEFAULT_MECHANISM)]
        if coded and coded[-1][:4] == key:
            coded[-1][4] += 1
        else:
            coded.append([*key, 1])
    return coded


def _read_anchor(path: Path) -> dict[str, Any] | None:
    anchor = anchor_path(path)
    try:
        data = anchor.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LedgerError(f"{anchor}: unreadable ledger anchor ({exc.strerror})") from None
    try:
        found = json.loads(data)
        if found.get("format") != _ANCHOR_FORMAT:
            raise ValueError("not a ledger anchor")
        releases, head = int(found["releases"]), str(found["head"])
        coded = [(float(s), float(q), int(n), str(m), int(c)) for s, q, n, m, c in found["history"]]
        if releases < 0 or sum(c for *_, c in coded) != releases or not 0 <= int(found["counted_from"]) <= releases or len(head) != 64:
            raise ValueError("its figures do not add up")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LedgerError(f"{anchor}: corrupt ledger anchor ({exc}); restore it or the ledger's backup") from None
    return found


def _lost(path: Path, anchor: dict[str, Any], what: str) -> LedgerLost:
    agency = anchor.get("agency")
    return LedgerLost(
        f"{path}: ledger {what}; its anchor {anchor_path(path).name} records {anchor['releases']} releases of "
        f"{agency!r} (δ={anchor.get('delta')}). Restore the ledger file, or re-initialise it with "
        f"`peel budget reinit {path} --reason TEXT --yes` (its anchored spend is carried over)",
        what,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


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

    def __init__(self, conn: sqlite3.Connection, path: Path, agency: str, version: int = SCHEMA_VERSION, *, writable: bool = True) -> None:
        self._conn = conn
        self.path = path
        self.agency = agency
        self._version = version  # 1: an old file only inspected (never migrated by a reader)
        self._writable = writable

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str, agency: str) -> Ledger:
        """The ledger of `agency` at `path`, created if the file does not exist (and no anchor
        says it existed). Raises LedgerError for a file of another agency, a corrupt file or a
        file that is not a ledger; LedgerLost for one missing, emptied, replaced or cut back
        against its anchor. A version-1 file is migrated to version 2."""
        if not agency or not agency.strip():
            raise LedgerError(f"{path}: a ledger needs an agency name")
        return cls._open(Path(path), agency, create=True)

    @classmethod
    def inspect(cls, path: Path | str) -> Ledger:
        """An existing ledger file, whichever agency it belongs to (for `peel budget`); read
        only: nothing is migrated or anchored."""
        path = Path(path)
        if not path.is_file():
            anchor = _read_anchor(path) if path.parent.is_dir() else None
            if anchor is not None and int(anchor["releases"]) > 0:
                raise _lost(path, anchor, "missing")
            raise LedgerError(f"{path}: no ledger file there")
        return cls._open(path, None, create=False)

    @classmethod
    def _open(cls, path: Path, agency: str | None, *, create: bool) -> Ledger:
        if path.is_dir():
            raise LedgerError(f"{path}: is a folder, not a ledger file")
        if not path.parent.is_dir():
            raise LedgerError(f"{path}: folder {path.parent} does not exist")
        anchor = _read_anchor(path)
        if anchor is not None and int(anchor["releases"]) == 0:
            anchor = None  # nothing spent to protect
        if anchor is not None and not path.exists():
            raise _lost(path, anchor, "missing (deleted or moved)")
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
                stored, version = cls._schema(conn, path, agency, create=create, anchor=anchor)
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
        ledger = cls(conn, path, stored, version, writable=create)
        try:
            if anchor is not None:
                ledger._check_anchor(anchor)
            if create:
                ledger._anchor(only_if_stale=True)
        except BaseException:
            ledger.close()
            raise
        return ledger

    @staticmethod
    def _schema(conn: sqlite3.Connection, path: Path, agency: str | None, *, create: bool, anchor: dict[str, Any] | None = None) -> tuple[str, int]:
        """Create the schema in an empty file, or check the file's (migrating a version-1 file
        when writing): returns its agency and schema version."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            if anchor is not None:
                raise _lost(path, anchor, "emptied (no tables: truncated or overwritten)")
            if not create or agency is None:
                raise LedgerError(f"{path}: empty file, not a Peel ledger")
            Ledger._create(conn, agency)
            return agency, SCHEMA_VERSION
        if "meta" not in tables:
            raise LedgerError(f"{path}: an SQLite file that is not a Peel ledger")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != _FORMAT:
            raise LedgerError(f"{path}: an SQLite file that is not a Peel ledger")
        version = meta.get("schema_version", "?")
        if version not in ("1", str(SCHEMA_VERSION)):
            raise LedgerError(f"{path}: ledger schema version {version}, this Peel reads versions 1 and {SCHEMA_VERSION}")
        if agency is not None and meta.get("agency") != agency:
            raise LedgerError(f"{path}: ledger of agency {meta.get('agency')!r}, not {agency!r}")
        if version == "1" and create:
            for statement in _MIGRATE_V1:
                conn.execute(statement)
            first = conn.execute("SELECT delta FROM releases ORDER BY id LIMIT 1").fetchone()
            updates = [("schema_version", str(SCHEMA_VERSION)), ("ledger_id", uuid.uuid4().hex), ("migrated_at", _now())]
            if first is not None:
                updates.append(("delta", repr(float(first[0]))))  # an old ledger's δ: its first charge's
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", updates)
            version = str(SCHEMA_VERSION)
        return meta["agency"], int(version)

    @staticmethod
    def _create(conn: sqlite3.Connection, agency: str, *, delta: float | None = None) -> None:
        for statement in _SCHEMA:  # not executescript(): it would commit the transaction
            conn.execute(statement)
        meta = [("format", _FORMAT), ("schema_version", str(SCHEMA_VERSION)), ("agency", agency), ("created_at", _now()), ("ledger_id", uuid.uuid4().hex)]
        if delta is not None:
            meta.append(("delta", repr(float(delta))))
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta)

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
        processes cannot both charge against the same spend. The anchor is rewritten after the
        commit (never before: an anchor ahead of its ledger would refuse a sound file)."""
        if not self._writable:
            raise LedgerError(f"{self.path}: opened for inspection only")
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
        self._anchor(only_if_stale=True)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from None

    def _meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._query("SELECT key, value FROM meta")}

    # --- anchoring -------------------------------------------------------------------------
    def _anchor_state(self) -> dict[str, Any]:
        """What the anchor records, read in one transaction (a consistent snapshot)."""
        in_txn = self._conn.in_transaction
        if not in_txn:
            self._conn.execute("BEGIN")
        try:
            rows = self.rows()
            meta = self._meta()
            budget = self.budget()
        finally:
            if not in_txn:
                self._conn.execute("COMMIT")
        pinned = meta.get("delta")
        return {
            "format": _ANCHOR_FORMAT,
            "agency": self.agency,
            "ledger": self.path.name,
            "ledger_id": meta.get("ledger_id"),
            "releases": len(rows),
            "counted_from": sum(1 for r in rows if not r["counted"]),
            "head": chain_head(rows),
            "delta": float(pinned) if pinned is not None else None,
            "budget": {"epsilon": budget.epsilon, "delta": budget.delta} if budget else None,
            "history": _runs(rows),
            "updated_at": _now(),
        }

    def _anchor(self, *, only_if_stale: bool = False) -> None:
        """Write the anchor atomically from the committed state; never replace an anchor of
        this ledger that records more releases (a concurrent writer's newer one)."""
        state = self._anchor_state()
        try:
            current = _read_anchor(self.path)
        except LedgerError:
            current = None
        if current is not None and current.get("ledger_id") == state["ledger_id"]:
            if int(current["releases"]) > state["releases"]:
                return
            if only_if_stale and (current["releases"], current["head"], current["counted_from"], current.get("budget"), current.get("delta")) == (
                state["releases"], state["head"], state["counted_from"], state["budget"], state["delta"]
            ):
                return
        elif only_if_stale and current is None and state["releases"] == 0 and state["budget"] is None:
            return  # nothing to protect yet: no file written by merely opening
        data = json.dumps(state, indent=1, ensure_ascii=False).encode()
        try:
            replace_durably(anchor_path(self.path), data, private_tmp=True)
        except OSError as exc:
            raise LedgerError(f"{anchor_path(self.path)}: cannot write the ledger's anchor ({exc.strerror})") from None

    def _check_anchor(self, anchor: dict[str, Any]) -> None:
        meta = self._meta()
        if anchor.get("agency") != self.agency:
            raise _lost(self.path, anchor, f"replaced: it is a ledger of {self.agency!r}")
        if anchor.get("ledger_id") is not None and meta.get("ledger_id") != anchor.get("ledger_id"):
            raise _lost(self.path, anchor, f"replaced: another ledger file (creation id {meta.get('ledger_id')}, anchored {anchor.get('ledger_id')})")
        rows = self.rows()
        n = int(anchor["releases"])
        if len(rows) < n:
            raise _lost(self.path, anchor, f"cut back: it holds {len(rows)} releases, fewer than anchored (an older copy, or rows lost)")
        if chain_head(rows[:n]) != anchor["head"]:
            raise _lost(self.path, anchor, f"altered: its first {n} releases are not the anchored ones (hash chain differs)")

    def anchor(self) -> dict[str, Any] | None:
        """The anchor file's content (None if there is none)."""
        return _read_anchor(self.path)

    # --- reading ---------------------------------------------------------------------------
    @property
    def ledger_id(self) -> str | None:
        """The creation id, unique to this file (None for an un-migrated version-1 file)."""
        return self._meta().get("ledger_id")

    def pinned_delta(self) -> float | None:
        """The δ this ledger's first charge was made at (every ε is reported at it); None
        before the first charge."""
        value = self._meta().get("delta")
        if value is not None:
            return float(value)
        first = self._query("SELECT delta FROM releases ORDER BY id LIMIT 1")  # an un-migrated v1 file
        return float(first[0]["delta"]) if first else None

    def pinned_neighbouring(self) -> str:
        """The neighbouring relation every ε of this ledger is accounted for, pinned by its first
        charge ("add-remove" for ledgers from before it was recorded: what they were charged under)."""
        return self._meta().get("neighbouring", ADD_REMOVE)

    def _delta(self, delta: float | None) -> float | None:
        """The δ to report at: the pinned one; asking for another is refused."""
        pinned = self.pinned_delta()
        if delta is not None and pinned is not None and float(delta) != pinned:
            raise DeltaMismatch(f"{self.path}: ε is reported at the ledger's pinned δ={pinned:g}, not at δ={float(delta):g}")
        return pinned if pinned is not None else delta

    def history(self) -> list[Release]:
        """Releases since the latest reset, in the order they were charged."""
        rows = self._query(f"SELECT sigma, sample_rate, steps FROM releases WHERE id > {_CUTOFF} ORDER BY id")
        return [(r["sigma"], r["sample_rate"], r["steps"]) for r in rows]

    def lifetime_history(self) -> list[Release]:
        """Every release ever charged (resets do not forget them), including those a
        re-initialised ledger carried over."""
        return [(r["sigma"], r["sample_rate"], r["steps"]) for r in self._query("SELECT sigma, sample_rate, steps FROM releases ORDER BY id")]

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

    def spent(self, delta: float | None = None, accountant: str = "auto") -> float:
        """ε spent since the latest reset, recomputed from the releases at the pinned δ
        (DeltaMismatch if `delta` is given and differs from it)."""
        history = self.history()
        at = self._delta(delta)
        if not history:
            return 0.0
        return epsilon(history, at, accountant, self.pinned_neighbouring())

    def lifetime_spent(self, delta: float | None = None, accountant: str = "auto") -> float:
        """ε of every release ever charged (all reset windows), at the pinned δ."""
        history = self.lifetime_history()
        at = self._delta(delta)
        if not history:
            return 0.0
        return epsilon(history, at, accountant, self.pinned_neighbouring())

    def budget(self) -> Budget | None:
        """The agency's current budget (its latest setting), or None if never set."""
        rows = self._query("SELECT epsilon, delta, source, recorded_at FROM budget ORDER BY id DESC LIMIT 1")
        return Budget(**rows[0]) if rows else None

    def budget_changes(self) -> list[Budget]:
        return [Budget(**r) for r in self._query("SELECT epsilon, delta, source, recorded_at FROM budget ORDER BY id")]

    def resets(self) -> list[Reset]:
        return [Reset(**r) for r in self._query("SELECT after_release_id, reason, actor, recorded_at FROM resets ORDER BY id")]

    def reinits(self) -> list[Reinit]:
        """Re-initialisations this ledger started from (at most one: it is recorded in the new file)."""
        if self._version < 2:
            return []
        fields = "previous_ledger_id, previous_releases, previous_head, carried_releases, found, kept_as, reason, actor, recorded_at"
        return [Reinit(**r) for r in self._query(f"SELECT {fields} FROM reinits ORDER BY id")]

    def rows(self) -> list[dict[str, Any]]:
        """Every release ever charged, oldest first; `counted` is False for those before the
        latest reset."""
        rows = self._query(f"SELECT *, id > {_CUTOFF} AS counted FROM releases ORDER BY id")
        for r in rows:
            r.setdefault("mechanism", DEFAULT_MECHANISM)  # an un-migrated version-1 file
        return rows

    # --- writing ---------------------------------------------------------------------------
    def set_budget(self, epsilon: float, delta: float, source: str) -> bool:
        """Record the agency's budget (ε, δ) and where it came from. Recorded only if it differs
        from the current one; returns whether it did. DeltaMismatch for a δ other than the
        pinned one."""
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"budget ε must be a finite number > 0, got {epsilon!r}")
        if not 0 < delta < 1:
            raise ValueError(f"budget δ must be in (0, 1), got {delta!r}")
        if not source.strip():
            raise ValueError("a budget change needs a source (e.g. the config it came from)")
        changed = False
        with self._write():
            pinned = self.pinned_delta()
            if pinned is not None and float(delta) != pinned:
                raise DeltaMismatch(
                    f"{self.path}: refusing a budget at δ={float(delta):g}: this ledger's δ is pinned at {pinned:g} "
                    f"by its first charge (ε at another δ would not be comparable with what was spent)"
                )
            current = self.budget()
            if current is None or (current.epsilon, current.delta) != (float(epsilon), float(delta)):
                self._conn.execute(
                    "INSERT INTO budget (epsilon, delta, source, recorded_at) VALUES (?, ?, ?, ?)",
                    (float(epsilon), float(delta), source, _now()),
                )
                changed = True
        return changed

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
        mechanism: str = DEFAULT_MECHANISM,
        neighbouring: str = ADD_REMOVE,
    ) -> float:
        """Charge one release before its update leaves the agency: returns ε after it, committed
        to disk. Raises BudgetExceeded (and writes nothing) if ε after would pass `budget`, and
        DeltaMismatch (nothing written) at a δ other than the one the first charge pinned.

        `mechanism` names what was released; the accounting is the same for all (a Gaussian
        mechanism, e.g. a once-off noised count, is the one-step, q = 1 case)."""
        checked = check_release(release)
        name = resolve_accountant(accountant)
        if not isinstance(mechanism, str) or not mechanism.strip():
            raise ValueError(f"a release needs a mechanism name, got {mechanism!r}")
        delta = float(delta)
        with self._write():
            pinned = self.pinned_delta()
            if pinned is None:
                current = self.budget()
                if current is not None and current.delta != delta:
                    raise DeltaMismatch(
                        f"{self.path}: refusing a charge at δ={delta:g}: the agency's budget is set at δ={current.delta:g}"
                    )
                self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('delta', ?)", (repr(delta),))
            elif delta != pinned:
                raise DeltaMismatch(
                    f"{self.path}: refusing a charge at δ={delta:g}: this ledger's δ is pinned at {pinned:g} by its first "
                    f"charge (ε at another δ would not be comparable with what was spent)"
                )
            relation = self._meta().get("neighbouring")
            if relation is None and not self.lifetime_history():
                self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('neighbouring', ?)", (neighbouring,))
            elif (relation or ADD_REMOVE) != neighbouring:
                raise RelationMismatch(
                    f"{self.path}: refusing a charge for {neighbouring} neighbours: this ledger accounts for "
                    f"{relation or ADD_REMOVE} neighbours since its first charge (a task with another privacy unit needs its own ledger)"
                )
            history = self.history()
            before = self._last_after(len(history), delta, name)
            if before is None:
                before = epsilon(history, delta, name, neighbouring)
            after = epsilon_after(history, checked, budget=budget, delta=delta, accountant=name, neighbouring=neighbouring)
            self._conn.execute(
                "INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before,"
                " epsilon_after, delta, accountant, recorded_at, mechanism) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(run_id), str(architecture), int(round), *checked, before, after, delta, name, _now(), mechanism.strip()),
            )
        return after

    def reset(self, reason: str, *, confirm: bool, actor: str | None = None) -> Reset:
        """Start counting the spend afresh. Refused unless `confirm` is True; recorded with
        `reason` and who did it. Earlier releases stay in the file (listed by `rows()`) and in
        the lifetime spend."""
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

    # --- re-initialising -------------------------------------------------------------------
    @classmethod
    def reinitialise(cls, path: Path | str, reason: str, *, confirm: bool, actor: str | None = None) -> Reinit:
        """Start a new ledger where an anchored one was lost (missing, emptied, replaced, cut
        back). The new file begins with every anchored release carried over (same σ, q, steps,
        mechanism; the reset boundary kept), the pinned δ and the last budget, and records the
        re-initialisation; whatever was in the old file's place is kept beside it as
        `<name>.lost-<time>`. Refused without `confirm` and a reason, without an anchor, and for
        a ledger that its anchor accepts (nothing was lost)."""
        path = Path(path)
        if confirm is not True:
            raise ConfirmationRequired(f"{path}: refusing to re-initialise a privacy ledger without explicit confirmation")
        if not reason or not reason.strip():
            raise LedgerError(f"{path}: a re-initialisation needs a reason")
        anchor = _read_anchor(path)
        if anchor is None or int(anchor["releases"]) == 0:
            raise LedgerError(f"{path}: no anchor recording releases ({anchor_path(path).name}); nothing to re-initialise from")
        try:
            cls._open(path, str(anchor["agency"]), create=False).close()
        except LedgerLost as exc:
            found = exc.what
        except LedgerError as exc:  # corrupt, foreign, not a ledger: replaced as far as the anchor goes
            found = f"unusable ({exc})"
        else:
            raise LedgerError(f"{path}: the ledger matches its anchor; nothing to re-initialise")
        agency, delta = str(anchor["agency"]), anchor.get("delta")
        if delta is None:
            raise LedgerError(f"{anchor_path(path)}: the anchor records releases but no δ; cannot carry them over")
        now = _now()
        kept_as = None
        if path.exists():
            kept = path.with_name(f"{path.name}.lost-{now[:19].replace(':', '')}")
            os.replace(path, kept)
            kept_as = kept.name
        carried = [(float(s), float(q), int(n), str(m)) for s, q, n, m, c in anchor["history"] for _ in range(int(c))]
        counted_from = int(anchor["counted_from"])
        name = resolve_accountant("auto")
        tmp = path.with_name(f".{path.name}.reinit-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(str(tmp), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        record = Reinit(anchor.get("ledger_id"), int(anchor["releases"]), str(anchor["head"]), len(carried), found, kept_as, reason.strip(), actor or default_actor(), now)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            cls._create(conn, agency, delta=delta)
            window: list[Release] = []
            for i, (sigma, q, steps, mechanism) in enumerate(carried):
                if i == counted_from and counted_from > 0:
                    conn.execute(
                        "INSERT INTO resets (after_release_id, reason, actor, recorded_at) VALUES (?, ?, ?, ?)",
                        (i, "carried over: a reset recorded before the re-initialisation", record.actor, now),
                    )
                    window = []
                before = epsilon(window, delta, name) if window else 0.0
                window.append((sigma, q, steps))
                conn.execute(
                    "INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before,"
                    " epsilon_after, delta, accountant, recorded_at, mechanism) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"{CARRIED_RUN}:{str(anchor.get('ledger_id'))[:8]}", "(carried over)", i + 1, sigma, q, steps, before, epsilon(window, delta, name), delta, name, now, mechanism),
                )
            if anchor.get("budget"):
                conn.execute(
                    "INSERT INTO budget (epsilon, delta, source, recorded_at) VALUES (?, ?, ?, ?)",
                    (float(anchor["budget"]["epsilon"]), float(anchor["budget"]["delta"]), "carried over by re-initialisation", now),
                )
            conn.execute(
                "INSERT INTO reinits (previous_ledger_id, previous_releases, previous_head, carried_releases, found, kept_as,"
                " reason, actor, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.previous_ledger_id, record.previous_releases, record.previous_head, record.carried_releases, record.found, record.kept_as, record.reason, record.actor, record.recorded_at),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        # The new anchor, from the file as written (not through `open`: the old anchor would
        # refuse the new file as a replacement, which is exactly what it is).
        with cls(sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None), path, agency) as ledger:
            ledger._anchor()
        return record
