"""Analytics at the person unit (issue 17 item 4): per-person caps on records, cells and records
per cell bound what one person moves; the sensitivity charged is the one the caps give; the
person ledger composes as dp-accounting does; `peel analyze --set privacy.unit=person` end to end."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clients.analytics import AnalyticsAgency
from experiments import analyze as an
from experiments.analytics_config import AnalyticsConfig
from federation.policy import AgencyPolicy
from policedata.files import write_federation_key, write_persons
from policedata.persons import PersonTable
from privacy.ledger import Ledger
from privacy.person_clip import selection_rank
from privacy.person_histogram import PersonCaps, cell_caps, l2_records, person_bounds, sensitivity
from privacy.person_unit import ADD_REMOVE_PERSON, person_ledger_path
from tasks.analytics import QUANTA, Domain, Histogram, Query, cell_index, cell_totals

MONTHS = tuple(f"2024-{m:02d}" for m in range(1, 7))
TYPES = ("Burglary", "Drugs", "Robbery")
DELTA = 1e-5
SECRET = bytes(range(32))


def _agency_folder(tmp_path: Path, name: str, heavy_records: int, rng: np.random.Generator) -> tuple[Path, pd.DataFrame]:
    """Records of one agency: a heavy victim P with `heavy_records` records over many cells,
    light victims with one or two, records with a suspect only, and records with nobody."""
    folder = tmp_path / name
    folder.mkdir()
    rows, persons = [], []
    for i in range(heavy_records + 300):
        cid = f"{name}-{i:05d}"
        month, ctype = MONTHS[int(rng.integers(len(MONTHS)))], TYPES[int(rng.integers(len(TYPES)))]
        rows.append((cid, month, ctype, "", name, "E01", 51.0 + rng.random(), -1.0))
        if i < heavy_records:
            persons.append((cid, "victim", "P"))
        elif i % 3 == 0:
            persons.append((cid, "victim", f"light-{i // 6}"))
        elif i % 3 == 1:
            persons.append((cid, "suspect", f"s-{i % 7}"))  # records owned by their suspect
    rows += [("", MONTHS[0], "Drugs", "", name, "E01", np.nan, np.nan)] * 4  # no Crime ID: persons of their own
    records = pd.DataFrame(rows, columns=["crime_id", "month", "crime_type", "outcome", "agency", "lsoa_code", "latitude", "longitude"])
    table = pd.DataFrame(persons, columns=["Crime ID", "role", "person"])
    write_persons(PersonTable(table["Crime ID"].to_numpy(dtype=str), table["role"].to_numpy(dtype=str), table["person"].to_numpy(dtype=str)), folder)
    write_federation_key(folder, SECRET)
    return folder, records


def _agency(tmp_path: Path, name: str, caps: PersonCaps, heavy: int = 40, budget: float = 50.0) -> AnalyticsAgency:
    folder, records = _agency_folder(tmp_path, name, heavy, np.random.default_rng(len(name)))
    ledger = person_ledger_path(tmp_path / f"{name}.sqlite")
    ledger.parent.mkdir(parents=True, exist_ok=True)
    policy = AgencyPolicy(budget=budget, delta=DELTA, max_grad_norm=1.0, unit="person", person_max_records=caps.max_records)
    return AnalyticsAgency(name, ledger, policy, records, persons=person_bounds(records, folder, caps))


@pytest.mark.parametrize(("m", "k", "c"), [(5, None, None), (5, 3, 2), (8, 4, 1), (3, 1, None)])
def test_one_heavy_person_moves_the_histogram_by_at_most_the_caps(tmp_path: Path, m: int, k: int | None, c: int | None) -> None:
    caps = PersonCaps(m, k, c)
    agency = _agency(tmp_path, "a", caps, heavy=40)
    domain = Domain(MONTHS, ("a",), crime_types=TYPES)
    h = Histogram("h", ("month", "crime_type"))
    with_p = cell_totals(agency.records, h, domain, agency.person_kept(h, domain))
    # Remove P (every record attributed to P) and bound again: only P's cells move, within the caps.
    folder = tmp_path / "a"
    rest = agency.records.iloc[40:].reset_index(drop=True)  # P's records are the first 40
    without = cell_totals(rest, h, domain, cell_caps(person_bounds(rest, folder, caps), *cell_index(rest, h, domain)))
    moved = with_p - without
    assert (moved >= 0).all() and moved.sum() <= m and (moved > 0).sum() <= caps.cells and moved.max() <= caps.per_cell
    assert math.sqrt(float((moved**2).sum())) <= l2_records(caps) + 1e-9
    # The slow reference: P's records in HMAC order, kept greedily under the three caps.
    p_records = agency.records.iloc[:40]
    ranks = selection_rank(SECRET, ("id:" + p_records["crime_id"]).to_numpy())
    cells_of_p = (p_records["month"] + "|" + p_records["crime_type"]).to_numpy()
    kept: dict[str, int] = {}
    for i in np.argsort(ranks, kind="stable"):
        cell = cells_of_p[i]
        if sum(kept.values()) < m and (cell in kept or len(kept) < caps.cells) and kept.get(cell, 0) < caps.per_cell:
            kept[cell] = kept.get(cell, 0) + 1
    assert sorted(moved[moved > 0].tolist()) == sorted(kept.values())
    assert moved.sum() == min(m, caps.cells * caps.per_cell) or len(kept) == caps.cells  # the caps bind
    assert agency.dropped_by_person_cap(h, domain) == len(agency.records) - with_p.sum()
    # Records without a person key are persons of their own: all four counted.
    assert with_p[list(itertools.product(MONTHS, TYPES)).index((MONTHS[0], "Drugs"))] >= 4


def test_l2_from_the_caps() -> None:
    assert l2_records(PersonCaps(5)) == 5  # all five in one cell
    assert l2_records(PersonCaps(5, 3, 2)) == pytest.approx(3.0)  # (2, 2, 1)
    assert l2_records(PersonCaps(8, 4, 1)) == pytest.approx(2.0)  # four cells of one
    assert l2_records(PersonCaps(5, 10, 2)) == pytest.approx(3.0)  # (2, 2, 1)
    assert sensitivity(PersonCaps(8, 4, 1), 1) == 2 and sensitivity(PersonCaps(5, 5, 1), 1) == 3  # ⌈√5⌉
    assert sensitivity(PersonCaps(5, 5, 1), QUANTA) == math.ceil(math.sqrt(5) * QUANTA)


def _vectors(caps: PersonCaps) -> set[tuple[int, ...]]:
    """Every shift vector the caps allow (sorted, non-zero entries: partitions)."""
    out = set()
    for total in range(1, caps.max_records + 1):
        for parts in range(1, caps.cells + 1):
            for v in itertools.product(range(1, caps.per_cell + 1), repeat=parts):
                if sum(v) == total:
                    out.add(tuple(sorted(v, reverse=True)))
    return out


@pytest.mark.parametrize(("caps", "sigma"), [(PersonCaps(5), 4.0), (PersonCaps(5), 20.0), (PersonCaps(5), 50.0), (PersonCaps(5, 5, 1), 6.0), (PersonCaps(6, 3, 2), 9.0)])
def test_charged_one_dimensional_shift_dominates_every_vector_the_caps_allow(caps: PersonCaps, sigma: float) -> None:
    """The accounting assumption (privacy/person_histogram.py): the exact PLD of every allowed
    shift vector (a composition of one-dimensional discrete Gaussians, the noise being
    independent per cell) spends no more than the 1-D discrete Gaussian at ⌈‖v‖₂⌉, at every δ tried."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    kw = {"value_discretization_interval": 1e-3, "pessimistic_estimate": True}
    charged = pld.from_discrete_gaussian_mechanism(sigma, sensitivity=sensitivity(caps, 1), **kw)
    for v in _vectors(caps):
        composed = None
        for shift in v:
            one = pld.from_discrete_gaussian_mechanism(sigma, sensitivity=shift, **kw)
            composed = one if composed is None else composed.compose(one)
        assert composed is not None
        for delta in (1e-3, 1e-5, 1e-7, 1e-9):
            assert composed.get_epsilon_for_delta(delta) <= charged.get_epsilon_for_delta(delta) + 1e-9, (v, delta)


def test_person_releases_charge_the_person_ledger_at_the_derived_sensitivity_and_match_dp_accounting(tmp_path: Path) -> None:
    from dp_accounting.pld import privacy_loss_distribution as pld

    caps = PersonCaps(5, 3, 2)
    agencies = [_agency(tmp_path, n, caps) for n in ("a", "b", "c")]
    domain = Domain(MONTHS, ("a", "b", "c"), crime_types=TYPES)
    analytics = AnalyticsConfig.model_validate(dict(epsilon=2.0, tolerate=1, queries=[
        {"name": "by_month", "by": ["month", "crime_type"]},
        {"name": "lat", "kind": "mean", "by": ["crime_type"], "column": "latitude", "bounds": [50.0, 53.0]},
    ]))
    calibrated = an.histogram_sigmas(analytics, DELTA, agencies[0].sensitivity)
    derived = {"by_month": sensitivity(caps, 1), "lat.sum": sensitivity(caps, QUANTA), "lat.count": sensitivity(caps, 1)}
    assert derived == {"by_month": 3, "lat.sum": 300, "lat.count": 3}
    for q in analytics.queries:
        outcome = an.run_query(q, analytics, domain, agencies, DELTA, calibrated, "run", with_truth=True)
        assert outcome.summary["refused"] is None and outcome.summary["unit"] == "person"
        assert outcome.summary["sensitivity"] == {h: derived[h] for h in outcome.summary["sensitivity"]}
        assert outcome.summary["dropped_by_person_cap"] > 0
    kw = {"value_discretization_interval": 1e-4, "pessimistic_estimate": True}
    for a in agencies:
        assert not (tmp_path / f"{a.name}.sqlite").exists()  # the record ledger is untouched
        with Ledger.open(a.ledger, a.name) as ledger:
            rows, spent, relation = ledger.rows(), ledger.spent(), ledger.pinned_neighbouring()
        assert relation == ADD_REMOVE_PERSON
        assert [int(r["sensitivity"]) for r in rows] == [derived["by_month"], derived["lat.sum"], derived["lat.count"]]
        composed = None
        for r in rows:
            one = pld.from_discrete_gaussian_mechanism(r["sigma"], sensitivity=int(r["sensitivity"]), **kw).self_compose(r["steps"])
            composed = one if composed is None else composed.compose(one)
        assert composed is not None
        assert spent == pytest.approx(composed.get_epsilon_for_delta(DELTA), rel=0.01)
        assert spent == pytest.approx(2.0, rel=0.01)


def test_a_record_ledger_refuses_a_person_release(tmp_path: Path) -> None:
    caps = PersonCaps(5)
    agency = _agency(tmp_path, "a", caps)
    with Ledger.open(agency.ledger, agency.name) as ledger:  # the person ledger already pinned to records
        ledger.charge("run", "analytics", 1, (1.0, 1.0, 1), delta=DELTA, accountant="pld", budget=50.0, neighbouring="add-remove")
    analytics = AnalyticsConfig.model_validate(dict(queries=[{"name": "q", "by": ["crime_type"]}]))
    domain = Domain(MONTHS, ("a",), crime_types=TYPES)
    outcome = an.run_query(analytics.queries[0], analytics, domain, [agency], DELTA, an.histogram_sigmas(analytics, DELTA, agency.sensitivity), "r", with_truth=True)
    assert outcome.frame is None and ADD_REMOVE_PERSON in outcome.summary["refused"]


def test_query_without_persons_file_is_a_clear_error(tmp_path: Path) -> None:
    from policedata.errors import DataError

    records = pd.DataFrame({"crime_id": ["x"], "month": [MONTHS[0]]})
    with pytest.raises(DataError, match="no persons file"):
        person_bounds(records, tmp_path, PersonCaps(5))
    Query("q", "count", ("month",))  # (the query itself is unit-agnostic)


def test_peel_analyze_at_the_person_unit_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`peel analyze --set privacy.unit=person` on a small synthetic federation: person ledgers
    charged, the record ledgers untouched, the unit and caps in summary.json, the federation ε
    the worst composition of max_agencies person ledgers."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    from experiments.cli import main

    config = tmp_path / "a.yaml"
    config.write_text(
        f"output: {tmp_path / 'runs'}\ndata: {{source: synthetic, agencies: 3, incidents: 9000, months: 12}}\n"
        "privacy: {epsilon: 3.0, delta: 1.0e-5, person: {max_records: 4, max_agencies: 2}}\n"
        "analytics: {epsilon: 1.0, person_max_cells: 3, person_max_per_cell: 2, queries: [{name: by_type, by: [crime_type, month]}, "
        "{name: lat, kind: mean, by: [crime_type], column: latitude, bounds: [50.3, 55.5]}]}\n",
        encoding="utf-8",
    )
    assert main(["analyze", str(config), "--set", "privacy.unit=person"]) == 0
    assert "records over the person caps dropped" in capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    block = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["analytics"]
    assert block["unit"] == "person" and block["person_caps"] == {"max_records": 4, "max_cells": 3, "max_per_cell": 2, "l2_records": pytest.approx(math.sqrt(8))}
    for q in block["queries"].values():
        assert q["refused"] is None and q["unit"] == "person" and q["dropped_by_person_cap"] > 0
    assert block["queries"]["by_type"]["sensitivity"] == {"by_type": 3}  # ⌈√8⌉
    assert block["queries"]["by_type"]["cap_bias_mae"] > 0 and "cap_bias_mae" not in block["queries"]["lat"]  # a mean has two histograms
    spec = json.loads((run_dir / "federation.json").read_text(encoding="utf-8"))
    kw = {"value_discretization_interval": 1e-4, "pessimistic_estimate": True}
    per_agency = {}
    for agency in spec["agencies"]:
        record_ledger = Path(agency["ledger"])
        if record_ledger.exists():
            with Ledger.inspect(record_ledger) as book:
                assert book.rows() == []
        with Ledger.inspect(person_ledger_path(record_ledger)) as book:
            rows = book.rows()
        assert len(rows) == 3
        per_agency[agency["name"]] = rows
    # Independent: the worst pair of agencies, every row composed with dp-accounting.
    worst = 0.0
    for pair in itertools.combinations(per_agency, 2):
        composed = None
        for r in (r for name in pair for r in per_agency[name]):
            one = pld.from_discrete_gaussian_mechanism(r["sigma"], sensitivity=int(r["sensitivity"]), **kw)
            composed = one if composed is None else composed.compose(one)
        assert composed is not None
        worst = max(worst, composed.get_epsilon_for_delta(1e-5))
    assert block["person_across_federation"]["epsilon"] == pytest.approx(worst, rel=0.01)
    assert block["person_across_federation"]["max_agencies"] == 2


@pytest.mark.parametrize(("m", "k", "c"), [(5, None, None), (4, 2, 2), (6, 3, 1), (2, 5, 3)])
def test_vectorised_caps_keep_what_the_greedy_rule_keeps_for_every_person(tmp_path: Path, m: int, k: int | None, c: int | None) -> None:
    caps = PersonCaps(m, k, c)
    agency = _agency(tmp_path, "a", caps, heavy=25)
    persons = agency.persons
    assert persons is not None
    domain = Domain(MONTHS, ("a",), crime_types=TYPES)
    h = Histogram("h", ("month", "crime_type"), where=(("crime_type", ("Burglary", "Robbery")),))
    cell, counted = cell_index(agency.records, h, domain)
    fast = cell_caps(persons, cell, counted)
    slow = np.zeros(len(cell), dtype=bool)
    for unit in np.unique(persons.unit):
        rows = [i for i in np.flatnonzero(persons.unit == unit) if counted[i]]
        kept: dict[int, int] = {}
        for i in sorted(rows, key=lambda i: persons.rank[i]):
            if sum(kept.values()) < m and (cell[i] in kept or len(kept) < caps.cells) and kept.get(int(cell[i]), 0) < caps.per_cell:
                kept[int(cell[i])] = kept.get(int(cell[i]), 0) + 1
                slow[i] = True
    np.testing.assert_array_equal(fast, slow)
