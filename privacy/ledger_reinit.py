"""Re-initialising a lost ledger: a new file that starts with every anchored release carried
over, so the spend stays spent (`Ledger.reinitialise` calls this). See privacy/ledger.py."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from privacy.accounting import ADD_REMOVE, Entry, epsilon, resolve_accountant
from privacy.ledger import CARRIED_RUN, Ledger
from privacy.ledger_anchor import anchor_path, decode_history, read_anchor
from privacy.ledger_schema import BUSY_TIMEOUT_SECONDS, ConfirmationRequired, LedgerError, LedgerLost, Reinit, create_schema, default_actor, utc_now
from privacy.mechanisms import entry_of
from privacy.person_unit import ADD_REMOVE_PERSON, PERSON_LEDGER_DIR, accounting_relation


def carried_relation(path: Path, anchor: dict[str, object]) -> str:
    """The neighbouring relation the lost ledger was pinned to, from its anchor; an anchor written
    before anchors recorded it is read from where the file lives (a person ledger's folder, else
    the record relation every other ledger of that time was charged under)."""
    recorded = anchor.get("neighbouring")
    if recorded is not None:
        return str(recorded)
    return ADD_REMOVE_PERSON if path.parent.name == PERSON_LEDGER_DIR else ADD_REMOVE


def reinitialise(path: Path | str, reason: str, *, confirm: bool, actor: str | None = None) -> Reinit:
    """Start a new ledger where an anchored one was lost (missing, emptied, replaced, cut
    back). The new file begins with every anchored release carried over (same σ, q, steps,
    mechanism; the reset boundary kept), the pinned δ and neighbouring relation (so ε stays
    accounted for the same unit and a charge for another unit is still refused) and the last budget, and records the
    re-initialisation; whatever was in the old file's place is kept beside it as
    `<name>.lost-<time>`. Refused without `confirm` and a reason, without an anchor, and for
    a ledger that its anchor accepts (nothing was lost)."""
    path = Path(path)
    if confirm is not True:
        raise ConfirmationRequired(f"{path}: refusing to re-initialise a privacy ledger without explicit confirmation")
    if not reason or not reason.strip():
        raise LedgerError(f"{path}: a re-initialisation needs a reason")
    anchor = read_anchor(path)
    if anchor is None or int(anchor["releases"]) == 0:
        raise LedgerError(f"{path}: no anchor recording releases ({anchor_path(path).name}); nothing to re-initialise from")
    try:
        Ledger.inspect_as(path, str(anchor["agency"])).close()
    except LedgerLost as exc:
        found = exc.what
    except LedgerError as exc:  # corrupt, foreign, not a ledger: replaced as far as the anchor goes
        found = f"unusable ({exc})"
    else:
        raise LedgerError(f"{path}: the ledger matches its anchor; nothing to re-initialise")
    agency, delta = str(anchor["agency"]), anchor.get("delta")
    if delta is None:
        raise LedgerError(f"{anchor_path(path)}: the anchor records releases but no δ; cannot carry them over")
    now = utc_now()
    kept_as = None
    if path.exists():
        kept = path.with_name(f"{path.name}.lost-{now[:19].replace(':', '')}")
        os.replace(path, kept)
        kept_as = kept.name
    carried = [(s, q, n, m, k, d) for s, q, n, m, c, k, d in decode_history(anchor["history"]) for _ in range(c)]
    counted_from = int(anchor["counted_from"])
    name = resolve_accountant("auto")
    relation = carried_relation(path, anchor)
    tmp = path.with_name(f".{path.name}.reinit-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(str(tmp), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    record = Reinit(anchor.get("ledger_id"), int(anchor["releases"]), str(anchor["head"]), len(carried), found, kept_as, reason.strip(), actor or default_actor(), now)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        create_schema(conn, agency, delta=delta)
        conn.execute("INSERT INTO meta (key, value) VALUES ('neighbouring', ?)", (relation,))
        window: list[Entry] = []
        for i, (sigma, q, steps, mechanism, kind, sensitivity) in enumerate(carried):
            if i == counted_from and counted_from > 0:
                conn.execute(
                    "INSERT INTO resets (after_release_id, reason, actor, recorded_at) VALUES (?, ?, ?, ?)",
                    (i, "carried over: a reset recorded before the re-initialisation", record.actor, now),
                )
                window = []
            before = epsilon(window, delta, name, accounting_relation(relation)) if window else 0.0
            window.append(entry_of(sigma, q, steps, kind, sensitivity))
            conn.execute(
                "INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before,"
                " epsilon_after, delta, accountant, recorded_at, mechanism, kind, sensitivity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f"{CARRIED_RUN}:{str(anchor.get('ledger_id'))[:8]}", "(carried over)", i + 1, sigma, q, steps, before, epsilon(window, delta, name, accounting_relation(relation)), delta, name, now, mechanism, kind, sensitivity),
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
    with Ledger(sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None), path, agency) as ledger:
        ledger.write_anchor()
    return record
