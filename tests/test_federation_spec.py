"""federation/spec.py: the typed contract between `peel run` and the Flower apps. What prepare
writes reads back equal; a spec of the first layout (the whole config under `config`) still reads,
to the same values; a damaged file stops with one line naming the file and the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments.config import to_dict, validate
from experiments.prepare import Federation, assign_budgets, run_spec
from federation import spec

CONFIG = {
    "seed": 7,
    "data": {"agencies": 3, "incidents": 4000, "months": 12, "agency": {"pattern": "(.*) Police"}},
    "task": {"test_months": 3, "hidden": [16, 8]},
    "federation": {"rounds": 3, "batch_size": 64, "aggregator": "median"},
    "privacy": {"epsilon": 2.0, "budgets": {"B": 0.5}, "central": {"adaptive": True, "epsilon": 4.0}},
    "faults": {"dropout": 0.1, "malicious": {"agency": "A", "attack": "sign_flip", "factor": 3.0}},
    "audit": {"enabled": True, "holdout": 0.3},
}


def _federation(tmp_path: Path) -> Federation:
    agencies = [{"name": n, "slug": n.lower(), "folder": str(tmp_path / n.lower())} for n in ("A", "B", "C")]
    return Federation(agencies, tmp_path / "areas.csv", None, "2023-10", ["a note"], ("2023-01", "2023-12"), {"counts": {"no agency": 2}})


def _spec(tmp_path: Path) -> tuple[spec.RunSpec, dict]:
    config = validate(CONFIG, "test")
    federation = _federation(tmp_path)
    assign_budgets(config, federation)
    return run_spec(config, federation, tmp_path / "run", "configs/x.yaml"), to_dict(config)


def test_what_prepare_writes_reads_back_equal(tmp_path):
    written, _ = _spec(tmp_path)
    path = spec.write(written, tmp_path / spec.SPEC_FILE)
    assert spec.read(path) == written
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left behind
    # The settings the apps read, typed, from the config.
    assert written.federation.rounds == 3 and written.federation.aggregator == "median"
    assert written.central_dp.epsilon == 4.0 and written.central_dp.adaptive and written.central_dp.delta == 1e-5
    assert written.faults.malicious == spec.MaliciousSpec("A", "sign_flip", 3.0) and written.faults.dropout == 0.1
    assert written.task.hidden == (16, 8) and written.records.agency_pattern == "(.*) Police"
    assert [a.policy.budget for a in written.agencies] == [2.0, 0.5, 2.0] and written.default_policy.budget == 2.0
    assert written.run_id == "run" and written.agency("B") is written.agencies[1] and written.agency("Z") is None
    # Readers of the file (report, `peel audit`, the runner's resume) find each agency's budget.
    assert [a["budget"] for a in json.loads(path.read_text())["agencies"]] == [2.0, 0.5, 2.0]


def test_a_spec_of_the_first_layout_reads_to_the_same_values(tmp_path):
    """Run folders made before the typed spec keep resuming: their `federation.json` held the
    whole resolved config under `config`."""
    new, config = _spec(tmp_path)
    old = {
        "run_dir": str(new.run_dir),
        "config": config,
        "agencies": [{"name": a.name, "slug": a.slug, "folder": str(a.folder), "ledger": str(a.ledger), "budget": a.policy.budget, "policy": a.policy.as_dict()} for a in new.agencies],
        "areas": str(new.areas),
        "task": {"name": "outcome", "positive": list(new.task.positive), "hotspot_share": 0.05, "test_from": "2023-10", "period": ["2023-01", "2023-12"]},
        "federated": list(new.federated),
        "ground_truth": None,
        "config_file": "configs/x.yaml",
        "notes": ["a note"],
        "set_aside": {"counts": {"no agency": 2}},
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert spec.read(tmp_path / "old.json") == new
    # Older still: agencies without a policy get the config's (with its per-agency budgets).
    for agency in old["agencies"]:
        del agency["policy"]
    (tmp_path / "older.json").write_text(json.dumps(old))
    assert [a.policy for a in spec.read(tmp_path / "older.json").agencies] == [a.policy for a in new.agencies]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d["federation"].pop("rounds"), "federation.rounds: missing"),
        (lambda d: d["federation"].update(rounds="3"), "federation.rounds: int expected, got '3'"),
        (lambda d: d["task"].update(hidden=16), "task.hidden: a list expected"),
        (lambda d: d["agencies"][1]["policy"].update(delta=2), "agencies[1].policy: agency policy delta must be in (0, 1)"),
        (lambda d: d["central_dp"].update(clip=1), "central_dp.clip: unknown key"),
        (lambda d: d.update(version=3), "federation spec version 3"),
        (lambda d: d.update(agencies={}), "agencies: a list expected"),
    ],
)
def test_a_damaged_spec_is_one_line_naming_file_and_key(tmp_path, damage, message):
    data = spec.to_json(_spec(tmp_path)[0])
    damage(data)
    path = tmp_path / spec.SPEC_FILE
    path.write_text(json.dumps(data))
    with pytest.raises(spec.SpecError) as err:
        spec.read(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_and_missing_files(tmp_path):
    path = tmp_path / spec.SPEC_FILE
    with pytest.raises(spec.SpecError, match="federation spec not found"):
        spec.read(path)
    path.write_text('{"version": 2, "run_dir": ')
    with pytest.raises(spec.SpecError, match="unreadable federation spec"):
        spec.read(path)
    path.write_text("[1, 2]")
    with pytest.raises(spec.SpecError, match="a JSON object expected"):
        spec.read(path)
    path.write_text(json.dumps({"config": {}, "run_dir": "/x"}))
    with pytest.raises(spec.SpecError, match="damaged federation spec .first layout"):
        spec.read(path)


def test_the_apps_see_no_config_spelling():
    """The bar of issue 14: clients/ and server/ read RunSpec attributes, never `spec["config"]`."""
    root = Path(__file__).resolve().parent.parent
    spelled = re.compile(r"""spec\w*(\(\w*\))?\[["']config["']\]""")
    offenders = [str(p.relative_to(root)) for room in ("clients", "server") for p in sorted((root / room).rglob("*.py")) if spelled.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
    assert spelled.search('agency.spec["config"]["seed"]') and not spelled.search('msg.content["config"]')
