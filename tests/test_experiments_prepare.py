"""Materialising a run's agencies: synthetic data in each agency's own folder; real
(data.police.uk layout) data read once and partitioned so each agency reads only its own."""

from __future__ import annotations

import json

from experiments.config import validate
from experiments.prepare import add_months, materialise, write_spec
from policedata.loader import load_street_folder
from policedata.synthetic import SyntheticSpec, generate


def test_add_months_crosses_years():
    assert add_months("2023-01", 18) == "2024-07"
    assert add_months("2023-12", 1) == "2024-01"


def test_synthetic_agencies_get_their_own_folders_and_test_months(tmp_path):
    config = validate({"data": {"agencies": 3, "incidents": 3000, "months": 6}, "task": {"test_months": 2}}, "t")
    federation = materialise(config, tmp_path / "data")
    assert federation.test_from == "2023-05"
    assert federation.ground_truth is not None and federation.areas is not None
    for agency in federation.agencies:
        records, _ = load_street_folder(agency["folder"])
        assert set(records["agency"]) == {agency["name"]}
    spec = json.loads(write_spec(config, federation, tmp_path).read_text())
    assert spec["federated"] == ["fedavg", "fedavg-dp"]
    assert spec["task"]["test_from"] == "2023-05"


def test_police_uk_folder_is_partitioned_by_agency_column_and_pattern(tmp_path):
    generate(SyntheticSpec(agencies=3, incidents=3000, months=5, seed=2), tmp_path / "download")
    raw = {
        "data": {
            "source": "police_uk",
            "path": str(tmp_path / "download" / "agencies"),
            "areas": str(tmp_path / "download" / "areas.csv"),
            # "Ravenwick Police" -> "Ravenwick": an agency name through a regex capture group
            "agency": {"column": "Reported by", "pattern": r"^(\w+)"},
        },
        "task": {"test_months": 1},
    }
    config = validate(raw, "t")
    federation = materialise(config, tmp_path / "run" / "data")
    assert federation.ground_truth is None
    assert federation.test_from == "2023-05"
    names = {a["name"] for a in federation.agencies}
    assert len(names) == 3 and all(" " not in n for n in names)
    for agency in federation.agencies:
        records, _ = load_street_folder(agency["folder"], "Reported by", r"^(\w+)")
        assert set(records["agency"]) == {agency["name"]}


def test_the_attacker_can_be_named_by_size_and_the_run_records_its_name(tmp_path):
    from experiments.prepare import Federation, resolve_attacker

    agencies = []
    for name, rows in (("Small Police", 2), ("Big Police", 5), ("Middle Police", 3)):
        folder = tmp_path / name.split()[0].lower() / "2023-01"
        folder.mkdir(parents=True)
        (folder / "2023-01-x-street.csv").write_text("Crime ID,Month\n" + "".join(f"{i},2023-01\n" for i in range(rows)))
        agencies.append({"name": name, "slug": name.split()[0].lower(), "folder": str(folder.parent)})
    federation = Federation(agencies, None, None, "2023-01", [])
    for selector, expected in (("largest", "Big Police"), ("smallest", "Small Police"), ("Middle Police", "Middle Police")):
        config = validate({"faults": {"malicious": {"agency": selector, "attack": "scale", "factor": 10}}}, "c.yaml")
        assert resolve_attacker(config, federation).faults.malicious.agency == expected
    assert resolve_attacker(validate({}, "c.yaml"), federation).faults.malicious is None
