"""What each agency's own ledger says, read by the harness where it runs beside the agencies
(simulation, loopback deployment): spent to date, lifetime, budget, pinned δ. Used for the
warning before training and for summary.json's `ledgers` block. Read-only."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from privacy.ledger import Ledger, LedgerError, anchor_path

log = logging.getLogger("peel.run")


@dataclass(frozen=True)
class LedgerFigures:
    agency: str
    file: str
    epsilon_spent_to_date: float | None  # since the latest reset, at the pinned δ
    epsilon_lifetime: float | None  # every release ever charged
    epsilon_budget: float
    delta: float | None  # pinned by the first charge (None: nothing charged yet)
    releases: int
    error: str | None = None  # the ledger could not be read here (and why)

    @property
    def remaining_share(self) -> float | None:
        if self.epsilon_spent_to_date is None:
            return None
        return max(0.0, 1.0 - self.epsilon_spent_to_date / self.epsilon_budget)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "remaining_share": self.remaining_share}


def read_figures(name: str, ledger: Path, budget: float, accountant: str) -> LedgerFigures:
    try:
        if not ledger.is_file() and not anchor_path(ledger).is_file():
            return LedgerFigures(name, str(ledger), 0.0, 0.0, budget, None, 0)  # never charged
        with Ledger.inspect(ledger) as book:
            delta = book.pinned_delta()
            if delta is None:
                return LedgerFigures(name, str(ledger), 0.0, 0.0, budget, None, 0)
            return LedgerFigures(name, str(ledger), book.spent(None, accountant), book.lifetime_spent(None, accountant), budget, delta, len(book.history()))
    except LedgerError as exc:
        return LedgerFigures(name, str(ledger), None, None, budget, None, 0, str(exc))


def agency_figures(agencies: list[dict]) -> dict[str, LedgerFigures]:
    """Each agency of a federation spec's list: its ledger's figures."""
    return {a["name"]: read_figures(a["name"], Path(a["ledger"]), float(a["policy"]["budget"]), str(a["policy"]["accountant"])) for a in agencies}


def warn_low_budgets(agencies: list[dict], share: float) -> list[str]:
    """Before training: one warning per agency with less than `share` of its budget left (or an
    unreadable ledger). Returns the warnings (also logged)."""
    warnings = []
    for figures in agency_figures(agencies).values():
        if figures.error:
            warnings.append(f"{figures.agency}: its ledger cannot be read ({figures.error}); it will refuse to release")
        elif figures.remaining_share is not None and figures.remaining_share < share:
            warnings.append(
                f"{figures.agency}: ε spent to date {figures.epsilon_spent_to_date:.3g} of its budget {figures.epsilon_budget:g} "
                f"(δ={figures.delta:g}), {figures.remaining_share:.1%} left: its DP releases will be very noisy or refused"
            )
    for line in warnings:
        log.warning("%s", line)
    return warnings
