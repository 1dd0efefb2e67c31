"""None cases mypy's strict mode surfaced in privacy/ (issue 14): each one gets a defined answer
instead of an AttributeError/TypeError from deep inside a library."""

import pytest

from privacy.accountants import ACCOUNTANTS
from privacy.ledger import Ledger, LedgerError

DELTA = 1e-5


@pytest.mark.parametrize("name", sorted(ACCOUNTANTS))
def test_every_accountant_reports_zero_for_an_empty_history(name):
    # PLD used to compose nothing and call None.get_epsilon_for_delta; PRV's domain search
    # failed on NaN. RDP already answered 0.
    assert ACCOUNTANTS[name].compute((), DELTA) == 0.0


def test_a_ledger_with_releases_but_no_pinned_delta_is_a_ledger_error(tmp_path, monkeypatch):
    with Ledger.open(tmp_path / "ledger.sqlite", "Avon") as ledger:
        ledger.charge("run-1", "fedavg-dp", 1, (1.0, 0.01, 10), delta=DELTA, accountant="pld", budget=10.0)
        assert ledger.spent() > 0
        # Unreachable through the class (releases store δ NOT NULL); narrowed, not a TypeError.
        monkeypatch.setattr(Ledger, "pinned_delta", lambda self: None)
        with pytest.raises(LedgerError, match="no pinned δ"):
            ledger.spent()
        with pytest.raises(LedgerError, match="no pinned δ"):
            ledger.lifetime_spent()
