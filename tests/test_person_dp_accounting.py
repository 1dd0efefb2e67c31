"""Person-level accounting (privacy.person_unit): a person ledger pins add-remove-person and
refuses record-level charges (and the other way round); person-level ε per agency and for the
federation, recomputed independently from the ledgers with dp-accounting's own PLD accountant."""

from __future__ import annotations

import itertools
import math

import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant

from privacy.accounting import ADD_REMOVE
from privacy.ledger import Ledger, RelationMismatch
from privacy.person_unit import (
    ADD_REMOVE_PERSON,
    federation_epsilon,
    group_conversion,
    person_ledger_path,
    record_epsilon_of_person_releases,
)

DELTA = 1e-5
# Per agency: its person-level releases (σ, q over units, steps), as a DP round charges them.
RELEASES = {
    "north": [(1.1, 0.05, 40), (1.1, 0.05, 40)],
    "south": [(0.9, 0.1, 20)],
    "east": [(1.6, 0.02, 100), (1.6, 0.02, 100), (1.6, 0.02, 100)],
    "west": [(2.5, 0.2, 10)],
}


def _person_ledgers(tmp_path) -> dict[str, list]:
    histories = {}
    for agency, releases in RELEASES.items():
        path = person_ledger_path(tmp_path / agency / "ledger.sqlite")
        path.parent.mkdir(parents=True)
        with Ledger.open(path, agency) as ledger:
            for i, release in enumerate(releases):
                ledger.charge("run", "fedavg-dp", i + 1, release, delta=DELTA, accountant="pld", budget=50.0, neighbouring=ADD_REMOVE_PERSON)
        with Ledger.inspect(path) as ledger:
            assert ledger.pinned_neighbouring() == ADD_REMOVE_PERSON
            histories[agency] = ledger.history()
    return histories


def _dp_accounting_epsilon(releases) -> float:
    """ε straight from dp-accounting: add/remove (its default relation), pessimistic PLD."""
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)  # within 0.04% of 1e-4 on these histories
    event = dp_event.ComposedDpEvent([dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(s)), n) for s, q, n in releases])
    accountant.compose(event)
    return float(accountant.get_epsilon(DELTA))


def test_person_epsilon_per_agency_and_federation_match_dp_accounting(tmp_path) -> None:
    histories = _person_ledgers(tmp_path)
    for agency, releases in RELEASES.items():
        with Ledger.inspect(person_ledger_path(tmp_path / agency / "ledger.sqlite")) as ledger:
            mine = ledger.spent()
        assert mine == pytest.approx(_dp_accounting_epsilon(releases), rel=0.01)
    for m in (1, 2, 3):
        fed = federation_epsilon(histories, DELTA, m)
        independent = max(_dp_accounting_epsilon([r for a in subset for r in RELEASES[a]]) for subset in itertools.combinations(RELEASES, m))
        assert fed.epsilon == pytest.approx(independent, rel=0.01)
        assert len(fed.agencies) == m
    # composing over more agencies never costs less; one agency is the per-agency maximum
    one, two = federation_epsilon(histories, DELTA, 1), federation_epsilon(histories, DELTA, 2)
    assert two.epsilon > one.epsilon
    assert one.epsilon == pytest.approx(max(_dp_accounting_epsilon(r) for r in RELEASES.values()), rel=0.01)


def test_a_person_ledger_refuses_record_charges_and_a_record_ledger_person_charges(tmp_path) -> None:
    person = person_ledger_path(tmp_path / "ledger.sqlite")
    person.parent.mkdir()
    with Ledger.open(person, "a") as ledger:
        ledger.charge("r", "fedavg-dp", 1, (1.0, 0.1, 5), delta=DELTA, accountant="pld", budget=10.0, neighbouring=ADD_REMOVE_PERSON)
        with pytest.raises(RelationMismatch):
            ledger.charge("r", "fedavg-dp", 2, (1.0, 0.1, 5), delta=DELTA, accountant="pld", budget=10.0, neighbouring=ADD_REMOVE)
    (tmp_path / "other").mkdir()  # a record ledger without a person ledger beside it
    with Ledger.open(tmp_path / "other" / "ledger.sqlite", "a") as ledger:
        ledger.charge("r", "fedavg-dp", 1, (1.0, 0.1, 5), delta=DELTA, accountant="pld", budget=10.0)
        with pytest.raises(RelationMismatch):
            ledger.charge("r", "fedavg-dp", 2, (1.0, 0.1, 5), delta=DELTA, accountant="pld", budget=10.0, neighbouring=ADD_REMOVE_PERSON)


def test_federation_epsilon_past_the_subset_limit_composes_every_agency(monkeypatch, tmp_path) -> None:
    import privacy.person_unit as pu

    histories = _person_ledgers(tmp_path)
    monkeypatch.setattr(pu, "MAX_SUBSETS", 2)
    fed = pu.federation_epsilon(histories, DELTA, 2)
    assert len(fed.agencies) == 4 and "all 4" in fed.method
    assert fed.epsilon == pytest.approx(_dp_accounting_epsilon([r for rs in RELEASES.values() for r in rs]), rel=0.01)


def test_unit_conversions() -> None:
    history = [(1.0, 0.01, 200)]
    record = record_epsilon_of_person_releases(history, DELTA)
    from privacy.accounting import epsilon

    assert record > epsilon(history, DELTA, "pld", ADD_REMOVE)  # replace-one costs more than add/remove
    eps1 = epsilon(history, DELTA, "pld", ADD_REMOVE)
    for k in (1, 2, 5, 20):
        textbook = group_conversion(eps1, DELTA, k)
        assert textbook.epsilon == pytest.approx(k * eps1) and textbook.delta == pytest.approx(min(1.0, k * math.exp((k - 1) * eps1) * DELTA))
    with pytest.raises(ValueError):
        group_conversion(1.0, DELTA, 0)


def test_heaviest_person_counts_records_and_units() -> None:
    import numpy as np

    from policedata.persons import NO_PERSON, RecordPersons
    from privacy.person_epsilons import heaviest_person

    N = NO_PERSON
    # person 0: victim of records 0-2 (own unit); person 1: suspect in records 0, 1 and 3 (units of
    # 0 and of 2) and in record 4 with no victim (own unit): 4 records over 3 units
    persons = RecordPersons(np.array(["a", "b", "c"]), victim=np.array([0, 0, 0, 2, N]), suspect=np.array([1, 1, N, 1, 1]))
    hp = heaviest_person(persons)
    assert (hp.records, hp.units) == (4, 3)


def test_epsilon_by_unit_person_and_record(tmp_path) -> None:
    from privacy.person_epsilons import AgencyLedger, HeaviestPerson, epsilon_by_unit

    histories = _person_ledgers(tmp_path)
    agencies = [AgencyLedger(a, tmp_path / a / "ledger.sqlite", HeaviestPerson(6, 3)) for a in RELEASES]
    block = epsilon_by_unit("person", agencies, max_agencies=2)
    assert block is not None
    within = max(_dp_accounting_epsilon(r) for r in RELEASES.values())
    assert block["person_within_agency"]["epsilon"] == pytest.approx(within, rel=0.01)
    assert block["person_across_federation"]["epsilon"] == pytest.approx(federation_epsilon(histories, DELTA, 2).epsilon)
    assert block["record"]["epsilon"] > 0 and block["person_all_roles_heaviest"]["units"] == 3
    conv = block["group_conversion_heaviest_person"]
    assert conv["k"] == 6 and conv["epsilon"] == pytest.approx(6 * block["per_agency"][conv["agency"]]["record"])
    # record ledgers alone (other folders): record unit, add/remove
    alone = []
    for a, releases in RELEASES.items():
        (tmp_path / "alone" / a).mkdir(parents=True)
        with Ledger.open(tmp_path / "alone" / a / "ledger.sqlite", a) as ledger:
            for i, release in enumerate(releases):
                ledger.charge("run", "fedavg-dp", i + 1, release, delta=DELTA, accountant="pld", budget=50.0)
        alone.append(AgencyLedger(a, tmp_path / "alone" / a / "ledger.sqlite", HeaviestPerson(6, 3)))
    record = epsilon_by_unit("record", alone, max_agencies=2)
    assert record is not None and "released_at_both_units" not in record
    assert record["record"]["epsilon"] == pytest.approx(within, rel=0.01)
    assert record["person_within_agency"]["epsilon"] == pytest.approx(6 * record["record"]["epsilon"])
    top2 = sorted((6 * e["record"] for e in record["per_agency"].values()), reverse=True)[:2]
    assert record["person_across_federation"]["epsilon"] == pytest.approx(sum(top2))
    assert epsilon_by_unit("person", [AgencyLedger("x", tmp_path / "none" / "ledger.sqlite")], max_agencies=2) is None


def test_an_agency_that_released_at_both_units_is_counted_in_both_figures(tmp_path) -> None:
    # The same folders used in place by a person-unit run and then a record-unit run: each agency
    # has both ledgers, and neither unit's figures may leave the other's releases out.
    from privacy.accounting import REPLACE_ONE, epsilon
    from privacy.person_epsilons import AgencyLedger, HeaviestPerson, epsilon_by_unit

    # Charging both is refused now (test below); folders from before that rule can hold both, so
    # the record ledgers are made elsewhere and moved in beside the person ledgers.
    _person_ledgers(tmp_path)
    for a, releases in RELEASES.items():
        (tmp_path / "elsewhere" / a).mkdir(parents=True)
        with Ledger.open(tmp_path / "elsewhere" / a / "ledger.sqlite", a) as ledger:
            for i, release in enumerate(releases):
                ledger.charge("run2", "fedavg-dp", i + 1, release, delta=DELTA, accountant="pld", budget=50.0)
        for moved in (tmp_path / "elsewhere" / a).iterdir():
            moved.rename(tmp_path / a / moved.name)
    agencies = [AgencyLedger(a, tmp_path / a / "ledger.sqlite", HeaviestPerson(6, 3)) for a in RELEASES]
    both = max(epsilon(r + r, DELTA, "pld", REPLACE_ONE) for r in RELEASES.values())  # replace-one over both ledgers
    alone = max(epsilon(r, DELTA, "pld", ADD_REMOVE) for r in RELEASES.values())
    for unit in ("record", "person"):
        block = epsilon_by_unit(unit, agencies, max_agencies=2)
        assert block is not None and sorted(block["released_at_both_units"]) == sorted(RELEASES)
        assert block["record"]["epsilon"] == pytest.approx(both, rel=1e-6) and block["record"]["epsilon"] > alone
        assert "record and person ledgers together" in block["record"]["method"]
    person = epsilon_by_unit("person", agencies, max_agencies=2)
    assert person is not None
    for a, r in RELEASES.items():  # own person ε + 6 × the record-unit releases' ε (group privacy)
        entry = person["per_agency"][a]
        assert entry["person_within_agency"] == pytest.approx(epsilon(r, DELTA, "pld", ADD_REMOVE) * 7, rel=1e-6)
    # Without person keys, the record-unit releases give a person no bound: said, not a number.
    blind = epsilon_by_unit("person", [AgencyLedger(a, tmp_path / a / "ledger.sqlite") for a in RELEASES], max_agencies=2)
    assert blind is not None and blind["person_within_agency"]["epsilon"] is None and blind["person_across_federation"]["epsilon"] is None


def test_epsilon_by_unit_skips_a_ledger_of_another_relation(tmp_path) -> None:
    """A hotspot ledger (replace-one area-month examples) gives no person figures."""
    from privacy.accounting import REPLACE_ONE
    from privacy.person_epsilons import AgencyLedger, HeaviestPerson, epsilon_by_unit

    with Ledger.open(tmp_path / "ledger.sqlite", "h") as ledger:
        ledger.charge("run", "fedavg-dp", 1, (1.0, 0.1, 10), delta=DELTA, accountant="pld", budget=50.0, neighbouring=REPLACE_ONE)
    assert epsilon_by_unit("record", [AgencyLedger("h", tmp_path / "ledger.sqlite", HeaviestPerson(3, 2))], max_agencies=2) is None


def test_a_person_capped_histogram_costs_a_record_swap_of_two_cells() -> None:
    # Caps keeping one record per person: removing the kept record lets the next one in, moving two
    # cells by one (L2 √2 > Δ = 1). The record figure accounts such events at ⌈√2·Δ⌉ = 2.
    from privacy.accounting import REPLACE_ONE, MechanismEvent, epsilon

    histogram = MechanismEvent("discrete-gaussian", 5.0, 1.0)
    swapped = MechanismEvent("discrete-gaussian", 5.0, 2.0)
    rounds = (1.0, 0.01, 200)
    assert record_epsilon_of_person_releases([histogram], DELTA) == pytest.approx(epsilon([swapped], DELTA, "pld", REPLACE_ONE), rel=1e-9)
    assert record_epsilon_of_person_releases([histogram], DELTA) > epsilon([histogram], DELTA, "pld", REPLACE_ONE)
    both = record_epsilon_of_person_releases([rounds, histogram], DELTA)
    assert both == pytest.approx(epsilon([rounds, swapped], DELTA, "pld", REPLACE_ONE), rel=1e-9)
    # A larger Δ (caps keeping several records) is rounded up from √2·Δ: 3 → 5.
    assert record_epsilon_of_person_releases([MechanismEvent("discrete-gaussian", 9.0, 3.0)], DELTA) == pytest.approx(
        epsilon([MechanismEvent("discrete-gaussian", 9.0, 5.0)], DELTA, "pld", REPLACE_ONE), rel=1e-9
    )


def test_a_charge_at_one_unit_is_refused_where_the_other_unit_has_spent(tmp_path) -> None:
    _person_ledgers(tmp_path)
    with Ledger.open(tmp_path / "north" / "ledger.sqlite", "north") as ledger:
        with pytest.raises(RelationMismatch, match="already has 2 release.*other privacy unit.*Use a copy of the agency's folder"):
            ledger.charge("run2", "fedavg-dp", 1, (1.0, 0.1, 10), delta=DELTA, accountant="pld", budget=50.0)
        assert ledger.rows() == []
    # and the other way round: a record ledger that spent refuses person charges beside it
    (tmp_path / "solo").mkdir()
    with Ledger.open(tmp_path / "solo" / "ledger.sqlite", "solo") as ledger:
        ledger.charge("run", "fedavg-dp", 1, (1.0, 0.1, 10), delta=DELTA, accountant="pld", budget=50.0)
    person = person_ledger_path(tmp_path / "solo" / "ledger.sqlite")
    person.parent.mkdir()
    with Ledger.open(person, "solo") as ledger:
        with pytest.raises(RelationMismatch, match="other privacy unit"):
            ledger.charge("run2", "fedavg-dp", 1, (1.0, 0.1, 10), delta=DELTA, accountant="pld", budget=50.0, neighbouring=ADD_REMOVE_PERSON)
