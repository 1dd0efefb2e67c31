"""summary.json's `persons` block (experiments.person_figures.who_pays, top_share): checked on
hand-built records against counts done by hand, and on generated data against the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.person_figures import top_share, who_pays
from policedata.persons import NO_PERSON, RecordPersons

X = NO_PERSON


def _persons(victim: list[int], suspect: list[int], n_keys: int) -> RecordPersons:
    return RecordPersons(np.array([f"k{i}" for i in range(n_keys)]), np.array(victim, dtype=np.int64), np.array(suspect, dtype=np.int64))


def test_who_pays_counts_people_repeats_and_the_top_victims_by_hand() -> None:
    # 8 records. Victim 0 is in 4 records, victim 1 in 2, victim 2 in 1; suspect 3 in 2 records
    # (one of them victim 2's), suspect 4 in 1 (a record without victim); key 5 is in no record
    # of these (another split's person).
    persons = _persons(victim=[0, 0, 0, 0, 1, 1, 2, X], suspect=[X, X, X, X, X, 3, 3, 4], n_keys=6)
    figures = who_pays(persons, dropped=3)
    assert figures["records"] == 8
    assert figures["people"] == 5  # 0..4; key 5 has no record here
    assert figures["victims"] == 3
    assert figures["records_with_victim"] == 7
    # Top 5% of 3 victims is one victim (at least one): victim 0's 4 of the 7 victim records.
    assert figures["top_victim_share"] == pytest.approx(4 / 7)
    # Records naming someone with >= 2 records: victim 0's 4, victim 1's 2, victim 2's record
    # (its suspect 3 has 2); not the last (suspect 4 has one).
    assert figures["repeat_record_share"] == pytest.approx(7 / 8)
    assert figures["heaviest_person_records"] == 4
    assert figures["dropped_by_cap"] == 3


def test_who_pays_with_nobody_in_the_records() -> None:
    figures = who_pays(_persons(victim=[X, X], suspect=[X, X], n_keys=0))
    assert figures["people"] == 0 and figures["top_victim_share"] is None and figures["repeat_record_share"] == 0.0


def test_top_share_takes_the_ceiling_of_five_percent_and_ignores_zeros() -> None:
    counts = np.array([0] * 50 + [1] * 38 + [10, 20])  # 40 people with records: top 2
    assert top_share(counts) == pytest.approx(30 / 68)
    assert top_share(np.zeros(3)) is None


def test_top_victim_share_on_generated_data_matches_the_ground_truth(tmp_path) -> None:
    """The figure read back from one agency's persons.csv equals the same count on the generator's
    true persons (policedata.synthetic_persons), and lies in the range the generator is calibrated to."""
    from policedata.ground_truth import true_persons
    from policedata.persons import crime_ids_of_record_keys, load_persons
    from policedata.synthetic import SyntheticSpec, generate
    from policedata.synthetic_persons import VICTIM_TOP5_RANGE

    out = tmp_path / "data"
    generate(SyntheticSpec(agencies=3, incidents=6000, months=6, seed=3), out, federation_key=b"k" * 32)
    truth = true_persons(out)
    agency_dir = sorted(p for p in (out / "agencies").iterdir() if p.is_dir())[-1]
    table = load_persons(agency_dir)
    ids = np.unique(table.crime_id)
    figures = who_pays(table.for_records(crime_ids_of_record_keys(np.char.add("id:", ids))))
    # Ground truth: the same agency's victim rows, by true person.
    rows = np.isin(truth.table.crime_id, ids) & (truth.table.role == "victim")
    counts = pd.Series(truth.table.person[rows]).value_counts().to_numpy()
    ordered = np.sort(counts)[::-1]
    expected = ordered[: max(1, int(np.ceil(0.05 * len(ordered))))].sum() / ordered.sum()
    assert figures["top_victim_share"] == pytest.approx(expected)
    assert figures["victims"] == len(counts)
    assert 0.1 < figures["top_victim_share"] <= VICTIM_TOP5_RANGE[1] + 0.1


def test_persons_of_a_prepared_person_unit_folder_counts_the_capped_records_independently(tmp_path) -> None:
    """summary.json's `persons` on a real (tiny) run folder: per agency, dropped_by_cap equals
    Σ over owners (victim, else suspect) of max(0, records − max_records), counted here from
    persons.csv without the clients' bounding code; the record unit has no such count."""
    from experiments.config import validate
    from experiments.person_figures import persons_of, record_persons_of
    from experiments.prepare import materialise
    from experiments.run_folder import open_folder
    from policedata.persons import crime_ids_of_record_keys, load_persons

    tiny = {"seed": 3, "data": {"agencies": 3, "incidents": 4000, "months": 12}, "task": {"test_months": 3, "hidden": [16]}, "federation": {"rounds": 1, "batch_size": 64}}
    figures = {}
    for unit in ("person", "record"):
        config = validate({**tiny, "privacy": {"epsilon": 2.0, "unit": unit, "person": {"max_records": 2}}}, "tiny")
        run_dir = tmp_path / unit
        folder = open_folder(config, "", run_dir, materialise(config, run_dir / "data"))
        figures[unit] = persons_of(folder, record_persons_of(folder))
    block, record = figures["person"], figures["record"]
    assert block is not None and record is not None and block["unit"] == "person" and block["max_records"] == 2
    assert set(block["per_agency"]) == {a["name"] for a in folder.federation.agencies}
    total_dropped = 0
    for a in folder.federation.agencies:
        mine = block["per_agency"][a["name"]]
        keys = folder.splits[a["name"]].train_keys
        assert keys is not None
        persons = load_persons(Path(a["folder"])).for_records(crime_ids_of_record_keys(keys))
        owner = np.where(persons.victim >= 0, persons.victim, persons.suspect)
        per_owner = pd.Series(owner[owner >= 0]).value_counts().to_numpy()
        expected = int(np.maximum(per_owner - 2, 0).sum())
        assert mine["dropped_by_cap"] == expected
        assert mine["records"] == len(keys)
        total_dropped += expected
        assert record["per_agency"][a["name"]]["dropped_by_cap"] is None
        assert {k: v for k, v in record["per_agency"][a["name"]].items() if k != "dropped_by_cap"} == {k: v for k, v in mine.items() if k != "dropped_by_cap"}
    assert total_dropped > 0  # the cap of 2 bites somewhere, so the comparison says something
