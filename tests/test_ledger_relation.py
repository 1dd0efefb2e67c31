"""A ledger pins the neighbouring relation of its first charge, as it pins δ: ε is only
comparable within one relation, so a charge under another is refused and nothing is written."""

from __future__ import annotations

import pytest

from privacy.accounting import epsilon
from privacy.ledger import Ledger, RelationMismatch

RELEASE = (2.0, 0.05, 40)


def test_the_first_charge_pins_the_relation_and_another_is_refused(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path, "A") as ledger:
        after = ledger.charge("run", "fedavg-dp", 1, RELEASE, delta=1e-5, accountant="pld", budget=10.0, neighbouring="replace-one")
        assert ledger.pinned_neighbouring() == "replace-one"
        assert after == pytest.approx(epsilon([RELEASE], 1e-5, "pld", "replace-one"))
        assert ledger.spent() == pytest.approx(after)
        before = path.read_bytes()
        with pytest.raises(RelationMismatch, match="replace-one neighbours since its first charge"):
            ledger.charge("run", "fedavg-dp", 2, RELEASE, delta=1e-5, accountant="pld", budget=10.0, neighbouring="add-remove")
        assert path.read_bytes() == before
        assert len(ledger.history()) == 1


def test_replace_one_costs_more_than_add_remove_for_the_same_release(tmp_path):
    with Ledger.open(tmp_path / "a.sqlite", "A") as add_remove, Ledger.open(tmp_path / "b.sqlite", "B") as replace_one:
        a = add_remove.charge("run", "x", 1, RELEASE, delta=1e-5, accountant="pld", budget=10.0)
        b = replace_one.charge("run", "x", 1, RELEASE, delta=1e-5, accountant="pld", budget=10.0, neighbouring="replace-one")
    assert b > a * 1.3
