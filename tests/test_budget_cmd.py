"""`peel budget show` lists every agency ledger under a folder with its spend recomputed;
`peel budget reset` refuses without confirmation (a user error) and records the reset."""

from __future__ import annotations

import pytest

from experiments.budget_cmd import BudgetCommandError, find_ledgers, reset, show
from privacy.accounting import epsilon
from privacy.ledger import LEDGER_FILENAME, Ledger

DELTA = 1e-5
RELEASE = (1.2, 0.02, 50)


@pytest.fixture
def tree(tmp_path):
    """Two agencies' ledgers at different depths, and an unrelated file."""
    avon = tmp_path / "runs" / "r1" / "data" / "avon" / LEDGER_FILENAME
    kent = tmp_path / "kent" / LEDGER_FILENAME
    for path in (avon, kent):
        path.parent.mkdir(parents=True)
    with Ledger.open(avon, "Avon") as ledger:
        ledger.set_budget(2.0, DELTA, "test")
        for r in (1, 2, 3):
            ledger.charge("run-abc", "fedavg-dp", r, RELEASE, delta=DELTA, accountant="auto", budget=2.0)
    Ledger.open(kent, "Kent").close()  # no budget, no releases yet
    (tmp_path / "runs" / "notes.txt").write_text("not a ledger")
    return tmp_path


def _row(text: str, agency: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(agency + " ")]
    return line.split()


def test_show_lists_every_agency_with_its_recomputed_spend(tree):
    assert len(find_ledgers(tree)) == 2
    text = show(tree)
    assert "pld accountant" in text
    spent = epsilon([RELEASE] * 3, DELTA)
    avon = _row(text, "Avon")
    assert avon[1] == "3"
    assert float(avon[2]) == pytest.approx(spent, rel=1e-3)
    assert avon[3] == "1e-05"
    assert float(avon[4]) == 2.0
    assert float(avon[5]) == pytest.approx(2.0 - spent, rel=1e-3)
    assert "run-abc round 3" in text
    assert avon[-2] == "record"  # the unit one ε protects, from the relation the ledger pinned
    assert _row(text, "Kent")[1:6] == ["0", "0", "–", "–", "–"]


def test_show_reports_an_unreadable_ledger_without_hiding_the_others(tree):
    broken = tree / "broken" / LEDGER_FILENAME
    broken.parent.mkdir()
    broken.write_bytes(b"\x00garbage" * 1000)
    text = show(tree)
    assert _row(text, "Avon")[1] == "3"
    assert f"unreadable: {broken}: unreadable or corrupt ledger" in text


def test_show_of_an_empty_or_missing_folder(tmp_path):
    assert show(tmp_path).startswith(f"No agency ledgers ({LEDGER_FILENAME}, ledgers/*.sqlite or anchored) under {tmp_path}")
    with pytest.raises(BudgetCommandError, match="no such folder"):
        show(tmp_path / "missing")
    with pytest.raises(BudgetCommandError, match="unknown accountant"):
        show(tmp_path, accountant="gdp")


def test_reset_without_confirmation_is_a_user_error_and_changes_nothing(tree):
    avon = tree / "runs" / "r1" / "data" / "avon" / LEDGER_FILENAME
    with pytest.raises(BudgetCommandError, match="^refusing to reset the privacy ledger of Avon .* add --yes$"):
        reset(tree, "Avon", "new year", confirm=False)
    with Ledger.inspect(avon) as ledger:
        assert ledger.resets() == [] and len(ledger.history()) == 3


def test_reset_with_confirmation_is_recorded_and_shown(tree):
    message = reset(tree, "Avon", "new financial year", confirm=True, actor="dpo@avon")
    assert message.startswith("Reset the privacy ledger of Avon")
    with Ledger.inspect(tree / "runs" / "r1" / "data" / "avon" / LEDGER_FILENAME) as ledger:
        (record,) = ledger.resets()
        assert (record.reason, record.actor) == ("new financial year", "dpo@avon")
        assert ledger.history() == []
    avon = _row(show(tree), "Avon")
    assert avon[1:4] == ["0", "(+3", "before"]
    assert avon[4] == "reset)" and float(avon[5]) == 0.0 and float(avon[8]) == 2.0  # spent 0, all remains


def test_reset_needs_one_named_agency_and_a_reason(tree):
    with pytest.raises(BudgetCommandError, match="several agencies .* --agency"):
        reset(tree, None, "x", confirm=True)
    with pytest.raises(BudgetCommandError, match="no ledger of agency 'Essex' \\(found: Avon, Kent\\)"):
        reset(tree, "Essex", "x", confirm=True)
    with pytest.raises(BudgetCommandError, match="needs a reason"):
        reset(tree, "Avon", "  ", confirm=True)
    # A single ledger file needs no agency name.
    assert "Kent" in reset(tree / "kent" / LEDGER_FILENAME, None, "x", confirm=True)


def _charged(path, agency: str, rounds: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with Ledger.open(path, agency) as ledger:
        ledger.set_budget(2.0, DELTA, "test")
        for r in range(1, rounds + 1):
            ledger.charge("run-sweep", "fedavg-dp", r, RELEASE, delta=DELTA, accountant="auto", budget=2.0)


def test_show_finds_sweep_cell_ledgers_and_anchored_ledgers_of_any_name(tree):
    # every ledger Peel writes: agency folders' ledger.sqlite (the fixture), a sweep cell's
    # ledgers/<slug>.sqlite, and a deployment's ledger at a path the user chose (found by its anchor)
    cell = tree / "runs" / "sweep-x" / "cells" / "c000" / "ledgers" / "dover.sqlite"
    _charged(cell, "Dover", rounds=2)
    uncharged_cell = cell.with_name("eden.sqlite")
    Ledger.open(uncharged_cell, "Eden").close()  # no anchor yet: found by its folder
    custom = tree / "deploy" / "agency-a" / "privacy-budget.sqlite"
    _charged(custom, "Fenland")
    unrelated = tree / "runs" / "flower-state.sqlite"
    unrelated.write_bytes(b"not ours")
    found = find_ledgers(tree)
    assert {cell, uncharged_cell, custom} <= set(found) and unrelated not in found
    text = show(tree)
    assert _row(text, "Dover")[1] == "2" and _row(text, "Eden")[1] == "0" and _row(text, "Fenland")[1] == "1"
    assert "unreadable" not in text and "flower-state" not in text


def test_a_lost_sweep_ledger_is_listed_as_lost(tree):
    cell = tree / "sweep" / "cells" / "c001" / "ledgers" / "dover.sqlite"
    _charged(cell, "Dover")
    cell.unlink()
    assert "LOST" in show(tree) and "dover.sqlite" in show(tree)
