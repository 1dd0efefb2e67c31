"""A re-initialised ledger keeps the neighbouring relation its first charge pinned: a person
ledger stays a person ledger (ε accounted per person, a record-level charge still refused), a
replace-one ledger stays replace-one — also when the anchor predates recording the relation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privacy.accounting import ADD_REMOVE, REPLACE_ONE, MechanismEvent, epsilon
from privacy.ledger import LEDGER_FILENAME, Ledger
from privacy.ledger_anchor import anchor_path
from privacy.ledger_schema import RelationMismatch
from privacy.person_unit import ADD_REMOVE_PERSON, person_ledger_path

DELTA = 1e-5
ROUND = (1.1, 0.02, 200)
COUNT = MechanismEvent("laplace", noise=2.0, sensitivity=1.0)


def _spend(path: Path, relation: str, release: object) -> float:
    with Ledger.open(path, "Avon") as ledger:
        for r in range(2):
            ledger.charge("run", "arch", r, release, delta=DELTA, accountant="auto", budget=50.0, neighbouring=relation)  # type: ignore[arg-type]
        return ledger.spent()


# An anchor from before anchors recorded the relation is read from where the ledger lives (a
# person ledger's folder, else add-remove), so a replace-one ledger needs an anchor that says so.
CASES = [
    (ADD_REMOVE_PERSON, ROUND, ADD_REMOVE, False),
    (REPLACE_ONE, ROUND, ADD_REMOVE, False),
    (ADD_REMOVE, COUNT, ADD_REMOVE_PERSON, False),
    (ADD_REMOVE_PERSON, ROUND, ADD_REMOVE, True),
    (ADD_REMOVE, COUNT, ADD_REMOVE_PERSON, True),
]


@pytest.mark.parametrize(("relation", "release", "other", "old_anchor"), CASES)
def test_reinit_carries_the_pinned_relation(tmp_path: Path, relation: str, release: object, other: str, old_anchor: bool) -> None:
    path = person_ledger_path(tmp_path / LEDGER_FILENAME) if relation == ADD_REMOVE_PERSON else tmp_path / LEDGER_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    spent = _spend(path, relation, release)
    anchor = json.loads(anchor_path(path).read_text())
    assert anchor["neighbouring"] == relation
    if old_anchor:
        del anchor["neighbouring"]
        anchor_path(path).write_text(json.dumps(anchor))
    path.unlink()
    Ledger.reinitialise(path, "disk lost", confirm=True)
    with Ledger.open(path, "Avon") as ledger:
        assert ledger.pinned_neighbouring() == relation
        assert ledger.spent() == pytest.approx(spent, rel=1e-9)
        # The carried rows' stored ε is accounted under the same relation as before the loss.
        assert ledger.rows()[-1]["epsilon_after"] == pytest.approx(spent, rel=1e-9)
        with pytest.raises(RelationMismatch):
            ledger.charge("next", "arch", 0, release, delta=DELTA, accountant="auto", budget=50.0, neighbouring=other)  # type: ignore[arg-type]
        after = ledger.charge("next", "arch", 0, release, delta=DELTA, accountant="auto", budget=50.0, neighbouring=relation)  # type: ignore[arg-type]
    assert after > spent


def test_replace_one_is_accounted_as_replace_one_after_reinit(tmp_path: Path) -> None:
    # The figure differs between relations, so a reinit that forgot the relation would show here.
    path = tmp_path / LEDGER_FILENAME
    spent = _spend(path, REPLACE_ONE, ROUND)
    assert spent > 1.05 * epsilon([ROUND, ROUND], DELTA, "pld", ADD_REMOVE)
    path.unlink()
    Ledger.reinitialise(path, "disk lost", confirm=True)
    with Ledger.open(path, "Avon") as ledger:
        assert ledger.spent() == pytest.approx(epsilon([ROUND, ROUND], DELTA, "pld", REPLACE_ONE), rel=1e-9)
        assert ledger.rows()[-1]["epsilon_after"] == pytest.approx(spent, rel=1e-9)
