"""Materialising a run's agencies: synthetic data in each agency's own folder; real
(data.police.uk layout) data read once and partitioned so each agency reads only its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.config import validate
from experiments.prepare import add_months, materialise, write_spec
from policedata.errors import DataError
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


# ------------------------------------------------ data.source agencies: the manifest is data


def _agencies_folder(tmp_path):
    """A `peel generate` folder, its manifest, and a config using it in place."""
    folder = tmp_path / "agencies"
    generate(SyntheticSpec(agencies=3, incidents=3000, months=4, seed=0), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    config = validate({"data": {"source": "agencies", "path": str(folder)}, "task": {"test_months": 1}}, "t")
    return folder, manifest, config


def _rewrite(root, manifest, index, **changes):
    manifest["agencies"][index].update(changes)
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
def test_an_agency_folder_outside_the_manifests_folder_is_refused(tmp_path, where):
    """Its ledger would be written there: an absolute path, `../elsewhere`, or a symlink out."""
    folder, manifest, config = _agencies_folder(tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.copytree(folder / manifest["agencies"][1]["folder"], outside)  # real records: loadable
    given = {"absolute": str(outside), "dotdot": "../elsewhere", "symlink": "agencies/link"}[where]
    if where == "symlink":
        (folder / "agencies" / "link").symlink_to(outside, target_is_directory=True)
    _rewrite(folder, manifest, 1, folder=given)
    with pytest.raises(DataError, match=r"manifest.json: agency 2 .*folder.*(absolute path|outside)"):
        materialise(config, tmp_path / "run" / "data")
    assert not list(tmp_path.rglob("ledger.sqlite*")) and not (tmp_path / "run").exists()


def test_a_symlinked_agency_folder_inside_the_manifests_folder_is_followed(tmp_path):
    folder, manifest, config = _agencies_folder(tmp_path)
    real = folder / manifest["agencies"][0]["folder"]
    (folder / "alias").symlink_to(real, target_is_directory=True)
    _rewrite(folder, manifest, 0, folder="alias")
    federation = materialise(config, tmp_path / "run" / "data")
    assert federation.agencies[0]["folder"] == str(real.resolve())


@pytest.mark.parametrize("slug", ["../../../../x", "a/b", "", ".", "UPPER"])
def test_a_slug_that_is_not_a_plain_slug_is_refused(tmp_path, slug):
    """Model and ledger file names are made of slugs: `../../../../x` wrote a model outside the run."""
    folder, manifest, config = _agencies_folder(tmp_path)
    _rewrite(folder, manifest, 2, slug=slug)
    with pytest.raises(DataError, match=r"manifest.json: agency 3 .*slug"):
        materialise(config, tmp_path / "run" / "data")


def test_a_valid_manifest_gives_resolved_folders_inside_it(tmp_path):
    folder, manifest, config = _agencies_folder(tmp_path)
    federation = materialise(config, tmp_path / "run" / "data")
    assert [a["slug"] for a in federation.agencies] == [a["slug"] for a in manifest["agencies"]]
    for agency in federation.agencies:
        assert Path(agency["folder"]).is_relative_to(folder.resolve()) and Path(agency["folder"]).is_dir()
