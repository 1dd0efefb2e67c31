"""An agency's privacy budget ledger: one SQLite file per agency, owned and kept by the agency.

It holds one row per release (what DP-SGD ran: σ, sample rate, steps; or, with a kind and a
sensitivity, a Laplace, discrete-Gaussian or Gaussian statistic — privacy/mechanisms.py; for which
run, architecture and round), the agency's budget with every change to it, and resets. The spend is always
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

The schema and its migration are in privacy/ledger_schema.py, the anchor in
privacy/ledger_anchor.py, re-initialisation in privacy/ledger_reinit.py.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from privacy.accounting import ADD_REMOVE, Entry, epsilon, resolve_accountant
from privacy.budget import epsilon_after
from privacy.ledger_anchor import ANCHOR_SUFFIX, anchor_path, anchor_state, check_anchor, ledger_of_anchor, lost, read_anchor, write_anchor
from privacy.ledger_schema import (
    BUSY_TIMEOUT_SECONDS,
    CUTOFF,
    DEFAULT_MECHANISM,
    SCHEMA_VERSION,
    Budget,
    ConfirmationRequired,
    DeltaMismatch,
    LedgerError,
    LedgerLost,
    Reinit,
    RelationMismatch,
    Reset,
    connect,
    default_actor,
    sql_error,
    utc_now,
)
from privacy.mechanisms import entry_of, stored_form
from privacy.person_unit import accounting_relation, other_unit_ledger_path  # a person-level ledger pins add-remove-person

# The ledger's names from before its schema and anchoring had modules of their own.
__all__ = [
    "ANCHOR_SUFFIX",
    "BUSY_TIMEOUT_SECONDS",
    "CARRIED_RUN",
    "DEFAULT_MECHANISM",
    "LEDGER_FILENAME",
    "SCHEMA_VERSION",
    "Budget",
    "ConfirmationRequired",
    "DeltaMismatch",
    "Ledger",
    "LedgerError",
    "LedgerLost",
    "Reinit",
    "RelationMismatch",
    "Reset",
    "anchor_path",
    "default_actor",
    "ledger_of_anchor",
]

LEDGER_FILENAME = "ledger.sqlite"  # the name `peel budget` looks for, at any depth
CARRIED_RUN = "carried-over"  # run_id of the releases a re-initialised ledger starts with


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
            anchor = read_anchor(path) if path.parent.is_dir() else None
            if anchor is not None and int(anchor["releases"]) > 0:
                raise lost(path, anchor, "missing")
            raise LedgerError(f"{path}: no ledger file there")
        return cls._open(path, None, create=False)

    @classmethod
    def _open(cls, path: Path, agency: str | None, *, create: bool) -> Ledger:
        if path.is_dir():
            raise LedgerError(f"{path}: is a folder, not a ledger file")
        if not path.parent.is_dir():
            raise LedgerError(f"{path}: folder {path.parent} does not exist")
        anchor = read_anchor(path)
        if anchor is not None and int(anchor["releases"]) == 0:
            anchor = None  # nothing spent to protect
        if anchor is not None and not path.exists():
            raise lost(path, anchor, "missing (deleted or moved)")
        lost_if_empty = lost(path, anchor, "emptied (no tables: truncated or overwritten)") if anchor is not None else None
        conn, stored, version = connect(path, agency, create=create, lost_if_empty=lost_if_empty)
        ledger = cls(conn, path, stored, version, writable=create)
        try:
            if anchor is not None:
                check_anchor(path, ledger.agency, ledger._meta(), ledger.rows(), anchor)
            if create:
                ledger.write_anchor(only_if_stale=True)
        except BaseException:
            ledger.close()
            raise
        return ledger

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
            raise sql_error(self.path, exc) from None
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
            raise sql_error(self.path, exc) from None
        self.write_anchor(only_if_stale=True)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise sql_error(self.path, exc) from None

    def _meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._query("SELECT key, value FROM meta")}

    # --- anchoring (privacy/ledger_anchor.py) ----------------------------------------------
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
        return anchor_state(self.path, self.agency, rows, meta, budget)

    def write_anchor(self, *, only_if_stale: bool = False) -> None:
        """Write the anchor atomically from the committed state (never over a newer one)."""
        write_anchor(self.path, self._anchor_state(), only_if_stale=only_if_stale)

    def anchor(self) -> dict[str, Any] | None:
        """The anchor file's content (None if there is none)."""
        return read_anchor(self.path)

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

    def _charged_delta(self, at: float | None) -> float:
        """`at` for a ledger holding releases: every release row stores its δ (NOT NULL), so the
        pinned δ exists (unreachable None, narrowed with a one-line error rather than a TypeError)."""
        if at is None:
            raise LedgerError(f"{self.path}: holds releases but no pinned δ to report ε at")
        return at

    def _entries(self, where: str) -> list[Entry]:
        kinds = ", kind, sensitivity" if self._version >= 3 else ""  # older files: tuples only
        rows = self._query(f"SELECT sigma, sample_rate, steps{kinds} FROM releases {where} ORDER BY id")
        return [entry_of(r["sigma"], r["sample_rate"], r["steps"], r.get("kind"), r.get("sensitivity")) for r in rows]

    def history(self) -> list[Entry]:
        """Releases since the latest reset, in the order they were charged: (σ, q, steps) tuples
        for subsampled-Gaussian releases, MechanismEvents for the rest."""
        return self._entries(f"WHERE id > {CUTOFF}")

    def lifetime_history(self) -> list[Entry]:
        """Every release ever charged (resets do not forget them), including those a
        re-initialised ledger carried over."""
        return self._entries("")

    def _last_after(self, counted: int, delta: float, accountant: str) -> float | None:
        """ε after the latest counted release, when it was computed the same way (same δ and
        accountant): the `epsilon_before` of the next row, saving one accountant call. The
        budget check itself always recomputes."""
        if counted == 0:
            return 0.0
        rows = self._query(f"SELECT epsilon_after, delta, accountant FROM releases WHERE id > {CUTOFF} ORDER BY id DESC LIMIT 1")
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
        return epsilon(history, self._charged_delta(at), accountant, accounting_relation(self.pinned_neighbouring()))

    def lifetime_spent(self, delta: float | None = None, accountant: str = "auto") -> float:
        """ε of every release ever charged (all reset windows), at the pinned δ."""
        history = self.lifetime_history()
        at = self._delta(delta)
        if not history:
            return 0.0
        return epsilon(history, self._charged_delta(at), accountant, accounting_relation(self.pinned_neighbouring()))

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
        rows = self._query(f"SELECT *, id > {CUTOFF} AS counted FROM releases ORDER BY id")
        for r in rows:
            r.setdefault("mechanism", DEFAULT_MECHANISM)  # an un-migrated version-1 file
            r.setdefault("kind", None)  # an un-migrated version-1 or -2 file
            r.setdefault("sensitivity", None)
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
                    (float(epsilon), float(delta), source, utc_now()),
                )
                changed = True
        return changed

    def charge(
        self,
        run_id: str,
        architecture: str,
        round: int,
        release: Entry,
        *,
        delta: float,
        accountant: str,
        budget: float,
        mechanism: str | None = None,
        neighbouring: str = ADD_REMOVE,
    ) -> float:
        """Charge one release before its update leaves the agency: returns ε after it, committed
        to disk. Raises BudgetExceeded (and writes nothing) if ε after would pass `budget`, and
        DeltaMismatch (nothing written) at a δ other than the one the first charge pinned.

        `release` is a (σ, q, steps) tuple (a subsampled Gaussian; a once-off Gaussian count is
        the one-step, q = 1 case) or a MechanismEvent (privacy/mechanisms.py: Laplace, discrete
        Gaussian, Gaussian with a stated sensitivity), stored with its kind and sensitivity.
        `mechanism` is the label people read; the accounting follows the release's kind."""
        checked = stored_form(release)
        entry = entry_of(*checked)
        name = resolve_accountant(accountant)
        if mechanism is None:
            mechanism = checked[3] or DEFAULT_MECHANISM
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
            self._refuse_if_other_unit_spent(neighbouring)
            history = self.history()
            before = self._last_after(len(history), delta, name)
            if before is None:
                before = epsilon(history, delta, name, accounting_relation(neighbouring))
            after = epsilon_after(history, entry, budget=budget, delta=delta, accountant=name, neighbouring=accounting_relation(neighbouring))
            self._conn.execute(
                "INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before,"
                " epsilon_after, delta, accountant, recorded_at, mechanism, kind, sensitivity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(run_id), str(architecture), int(round), *checked[:3], before, after, delta, name, utc_now(), mechanism.strip(), *checked[3:]),
            )
        return after

    def _refuse_if_other_unit_spent(self, neighbouring: str) -> None:
        """RelationMismatch if the agency's ledger of the other unit (person beside record, or
        record beside person) holds releases: each ledger's budget guards only its own unit, so
        one agency's data released at both units would pass each guard while the record-level
        total (privacy.person_epsilons composes both) passed its budget."""
        other = other_unit_ledger_path(self.path)
        if not other.is_file():
            return
        with Ledger.inspect(other) as book:
            released = len(book.lifetime_history())
        if released:
            raise RelationMismatch(
                f"{self.path}: refusing a charge for {neighbouring} neighbours: this agency's data already has {released} "
                f"release(s) at the other privacy unit ({other}); each ledger's budget guards one unit only, so releasing "
                "at both units would let the agency's total pass its budget unseen. Use a copy of the agency's folder for the other unit"
            )

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
            reset = Reset(int(last), reason.strip(), actor or default_actor(), utc_now())
            self._conn.execute(
                "INSERT INTO resets (after_release_id, reason, actor, recorded_at) VALUES (?, ?, ?, ?)",
                (reset.after_release_id, reset.reason, reset.actor, reset.recorded_at),
            )
        return reset

    # --- re-initialising -------------------------------------------------------------------
    @classmethod

    # --- re-initialising (privacy/ledger_reinit.py) ------------------------------------------
    @classmethod
    def inspect_as(cls, path: Path | str, agency: str) -> Ledger:
        """An existing ledger file of `agency`, read only (checked against its anchor)."""
        return cls._open(Path(path), agency, create=False)

    @classmethod
    def reinitialise(cls, path: Path | str, reason: str, *, confirm: bool, actor: str | None = None) -> Reinit:
        """Start a new ledger where an anchored one was lost: see privacy.ledger_reinit.reinitialise."""
        path = Path(path)
        from privacy.ledger_reinit import reinitialise  # imports this module

        return reinitialise(path, reason, confirm=confirm, actor=actor)
