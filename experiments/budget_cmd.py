"""`peel budget show [FOLDER]` and `peel budget reset`: what the agencies' ledgers say, and the
one deliberate way to start an agency's spend afresh.

Ledgers are the files named `ledger.sqlite` (privacy.ledger.LEDGER_FILENAME), found at any depth
under a folder, so one command covers an agency folder, a run folder or a whole tree of runs.
"""

from __future__ import annotations

import math
from pathlib import Path

from privacy.accounting import resolve_accountant
from privacy.ledger import LEDGER_FILENAME, Ledger, LedgerError


class BudgetCommandError(Exception):
    """A user error in a `peel budget` command: one line, the CLI exits 2."""


def find_ledgers(folder: Path) -> list[Path]:
    """Every ledger file under `folder` (or `folder` itself if it is one), sorted."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise BudgetCommandError(f"{folder}: no such folder")
    return sorted(folder.rglob(LEDGER_FILENAME))


def _number(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4g}"


def _summary(ledger: Ledger, accountant: str) -> list[str]:
    rows = ledger.rows()
    counted = [r for r in rows if r["counted"]]
    budget = ledger.budget()
    # The spend is measured at the budget's δ; without a budget, at the δ the releases used.
    delta = budget.delta if budget else (counted[-1]["delta"] if counted else None)
    spent = ledger.spent(delta, accountant) if delta is not None else 0.0
    last = rows[-1] if rows else None
    return [
        ledger.agency,
        str(len(counted)) + (f" (+{len(rows) - len(counted)} before reset)" if len(rows) > len(counted) else ""),
        _number(spent),
        f"{delta:g}" if delta is not None else "–",
        _number(budget.epsilon) if budget else "–",
        _number(max(0.0, budget.epsilon - spent)) if budget else "–",
        f"{last['run_id']} round {last['round']}, {last['recorded_at'][:19]}Z" if last else "–",
    ]


def show(folder: Path, accountant: str = "auto") -> str:
    """A text table of every agency ledger under `folder`: agency, releases counted, ε spent
    (recomputed with `accountant`), δ, budget, remaining, last release, file."""
    try:
        name = resolve_accountant(accountant)
    except ValueError as exc:
        raise BudgetCommandError(str(exc)) from None
    folder = Path(folder)
    paths = find_ledgers(folder)
    if not paths:
        return f"No agency ledgers ({LEDGER_FILENAME}) under {folder}."
    header = ["agency", "releases", "ε spent", "δ", "budget", "remaining", "last release", "ledger"]
    table, problems = [], []
    for path in paths:
        try:
            with Ledger.inspect(path) as ledger:
                row = _summary(ledger, name)
        except LedgerError as exc:
            problems.append(str(exc))
            continue
        shown = path.relative_to(folder) if folder.is_dir() else path
        table.append([*row, str(shown)])
    table.sort(key=lambda r: (r[0], r[-1]))
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = [f"Privacy budgets under {folder} (ε recomputed with the {name} accountant)", ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *table]]
    lines += [f"unreadable: {p}" for p in problems]
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
