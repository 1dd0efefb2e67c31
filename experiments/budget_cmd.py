"""`peel budget show [FOLDER]`, `peel budget reset` and `peel budget reinit`: what the agencies'
ledgers say, the one deliberate way to start an agency's spend afresh, and the one way past a
ledger that was lost (its anchored spend carried over).

Ledgers are found at any depth under a folder, so one command covers an agency folder, a run
folder, a sweep or a whole tree of them. Every ledger Peel writes is one of: an agency folder's
`ledger.sqlite` (privacy.ledger.LEDGER_FILENAME; runs, agencies used in place), a sweep cell's
`ledgers/<agency slug>.sqlite` (CELL_LEDGERS_DIR), or a ledger at a path the user chose (a
deployment's `ledger:`), which is found by its anchor `<name>.anchor.json` once it has charged
anything. An anchor whose ledger is gone is listed as a lost ledger.
"""

from __future__ import annotations

import math
from pathlib import Path

from privacy.accounting import ADD_REMOVE, REPLACE_ONE, resolve_accountant
from privacy.ledger import ANCHOR_SUFFIX, LEDGER_FILENAME, ConfirmationRequired, Ledger, LedgerError, LedgerLost, anchor_path, ledger_of_anchor
from privacy.person_unit import ADD_REMOVE_PERSON


class BudgetCommandError(Exception):
    """A user error in a `peel budget` command: one line, the CLI exits 2."""


# A sweep cell's own ledgers (cells are alternative worlds, each with its own spend), one
# `<agency slug>.sqlite` per agency (experiments/sweep.py).
CELL_LEDGERS_DIR = "ledgers"
LEDGER_SUFFIX = Path(LEDGER_FILENAME).suffix


def find_ledgers(folder: Path, *, lost: bool = False) -> list[Path]:
    """Every ledger file under `folder` (or `folder` itself if it is one), sorted; with `lost`,
    also the ledger paths that only an anchor still names (deleted or moved ledgers)."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise BudgetCommandError(f"{folder}: no such folder")
    anchors = list(folder.rglob("*" + ANCHOR_SUFFIX))
    found = set(folder.rglob(LEDGER_FILENAME))
    found |= {p for p in folder.rglob(f"{CELL_LEDGERS_DIR}/*{LEDGER_SUFFIX}") if p.is_file()}
    found |= {ledger for ledger in map(ledger_of_anchor, anchors) if ledger.is_file()}
    if lost:
        found |= set(map(ledger_of_anchor, anchors))
    return sorted(found)


def _number(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4g}"


# What one ε of a ledger protects, by the relation its first charge pinned.
UNIT_OF_RELATION = {ADD_REMOVE: "record", ADD_REMOVE_PERSON: "person", REPLACE_ONE: "example (replace-one)"}


def _summary(ledger: Ledger, accountant: str) -> list[str]:
    rows = ledger.rows()
    counted = [r for r in rows if r["counted"]]
    budget = ledger.budget()
    # Every ε at the δ the first charge pinned (a budget cannot be set at another once pinned);
    # before any charge, the budget's δ.
    pinned = ledger.pinned_delta()
    delta = pinned if pinned is not None else (budget.delta if budget else None)
    spent = ledger.spent(None, accountant) if counted else 0.0
    lifetime = ledger.lifetime_spent(None, accountant) if len(rows) > len(counted) else spent
    last = rows[-1] if rows else None
    return [
        ledger.agency,
        str(len(counted)) + (f" (+{len(rows) - len(counted)} before reset)" if len(rows) > len(counted) else ""),
        _number(spent),
        f"{delta:g}" if delta is not None else "–",
        _number(budget.epsilon) if budget else "–",
        _number(max(0.0, budget.epsilon - spent)) if budget else "–",
        _number(lifetime),
        f"{last['run_id']} round {last['round']}, {last['recorded_at'][:19]}Z" if last else "–",
        UNIT_OF_RELATION.get(ledger.pinned_neighbouring(), ledger.pinned_neighbouring()) if rows else "–",
    ]


def show(folder: Path, accountant: str = "auto") -> str:
    """A text table of every agency ledger under `folder`: agency, releases counted, ε spent
    since the last reset (recomputed with `accountant`), the pinned δ, budget, remaining,
    lifetime ε (every release, resets or not), last release, file; then the ledgers that are
    unreadable or lost (missing, emptied, replaced against their anchors), each named so."""
    try:
        name = resolve_accountant(accountant)
    except ValueError as exc:
        raise BudgetCommandError(str(exc)) from None
    folder = Path(folder)
    paths = find_ledgers(folder, lost=True)
    if not paths:
        return f"No agency ledgers ({LEDGER_FILENAME}, {CELL_LEDGERS_DIR}/*{LEDGER_SUFFIX} or anchored) under {folder}."
    header = ["agency", "releases", "ε since reset", "δ (pinned)", "budget", "remaining", "ε lifetime", "last release", "unit", "ledger"]
    table, problems = [], []
    for path in paths:
        try:
            with Ledger.inspect(path) as ledger:
                row = _summary(ledger, name)
        except LedgerLost as exc:
            problems.append(f"LOST: {exc}")
            continue
        except LedgerError as exc:
            if path.exists():  # not: an anchor of a ledger that never spent anything, now gone
                problems.append(f"unreadable: {exc}")
            continue
        shown = path.relative_to(folder) if folder.is_dir() else path
        table.append([*row, str(shown)])
    table.sort(key=lambda r: (r[0], r[-1]))
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = [
        f"Privacy budgets under {folder} (ε recomputed with the {name} accountant at each ledger's pinned δ; "
        "ε since reset counts against the budget, ε lifetime is every release ever charged)",
        "",
    ]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *table]]
    lines += problems
    return "\n".join(lines)


def reset(target: Path, agency: str | None, reason: str, confirm: bool, actor: str | None = None) -> str:
    """Reset the ledger of `agency` under `target` (a folder searched at any depth, or a ledger
    file); `agency` may be omitted when there is exactly one ledger. Refuses without `confirm`
    or without a reason. Returns a one-line report."""
    target = Path(target)
    if not reason or not reason.strip():
        raise BudgetCommandError("a reset needs a reason (--reason TEXT); it is recorded in the ledger")
    candidates, unreadable = [], []
    for path in find_ledgers(target):
        try:
            with Ledger.inspect(path) as ledger:
                candidates.append((ledger.agency, path))
        except LedgerError as exc:
            if target.is_file():
                raise BudgetCommandError(str(exc)) from None
            unreadable.append(path)
    also = f"; {len(unreadable)} unreadable: {', '.join(map(str, unreadable))}" if unreadable else ""
    if not candidates:
        raise BudgetCommandError(f"{target}: no readable agency ledgers ({LEDGER_FILENAME}) found{also}")
    chosen = [c for c in candidates if agency is None or c[0] == agency]
    names = ", ".join(sorted({a for a, _ in candidates}))
    if not chosen:
        raise BudgetCommandError(f"{target}: no ledger of agency {agency!r} (found: {names}{also})")
    if len(chosen) > 1:
        which = "several ledgers of " + repr(agency) if agency else "several agencies"
        raise BudgetCommandError(
            f"{target}: {which} ({', '.join(str(p) for _, p in chosen)}): name one ledger file"
            + ("" if agency else " or one agency with --agency")
        )
    (name, path), = chosen
    if not confirm:
        raise BudgetCommandError(
            f"refusing to reset the privacy ledger of {name} ({path}) without confirmation: add --yes"
        )
    try:
        with Ledger.open(path, name) as ledger:
            record = ledger.reset(reason, confirm=True, actor=actor)
    except LedgerError as exc:
        raise BudgetCommandError(str(exc)) from None
    return (
        f"Reset the privacy ledger of {name} ({path}) at {record.recorded_at[:19]}Z: releases up to "
        f"#{record.after_release_id} no longer count (they stay in the file); reason: {record.reason}"
    )


def reinit(target: Path, reason: str, confirm: bool, actor: str | None = None) -> str:
    """Re-initialise a lost ledger (`target`: the ledger file, or a folder holding exactly one
    lost one) from its anchor; refused without `confirm`, a reason, or a ledger actually lost.
    Returns a one-line report."""
    target = Path(target)
    if not reason or not reason.strip():
        raise BudgetCommandError("a re-initialisation needs a reason (--reason TEXT); it is recorded in the new ledger")
    if target.is_dir():
        lost = []
        for path in find_ledgers(target, lost=True):
            try:
                Ledger.inspect(path).close()
            except LedgerLost:
                lost.append(path)
            except LedgerError:
                if anchor_path(path).exists():
                    lost.append(path)
        if len(lost) != 1:
            which = ", ".join(map(str, lost)) if lost else "none"
            raise BudgetCommandError(f"{target}: {len(lost)} lost ledgers ({which}): name one ledger file")
        (target,) = lost
    if not confirm:
        raise BudgetCommandError(f"refusing to re-initialise the privacy ledger {target} without confirmation: add --yes")
    try:
        record = Ledger.reinitialise(target, reason, confirm=True, actor=actor)
    except (LedgerError, ConfirmationRequired) as exc:
        raise BudgetCommandError(str(exc)) from None
    kept = f"; what was there is kept as {record.kept_as}" if record.kept_as else ""
    return (
        f"Re-initialised the privacy ledger {target} at {record.recorded_at[:19]}Z (it was {record.found}): "
        f"{record.carried_releases} anchored releases carried over, so their spend still counts{kept}; reason: {record.reason}"
    )
