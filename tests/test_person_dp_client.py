"""An agency under privacy.unit person (its policy's `unit`), through its ClientApp handlers: it
trains person-level DP-SGD on its own persons.csv, charges its person ledger (pinned
add-remove-person) and never its record ledger, and releases a unit count, not a record count."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from clients.agency import locate, read_spec
from clients.app import REFUSED, train
from clients.person_round import units_of
from federation.contract import EPSILON_SPENT_TO_DATE, NUM_EXAMPLES
from privacy.ledger import Ledger
from privacy.person_unit import ADD_REMOVE_PERSON, person_ledger_path
from tasks.model import initial_model


@pytest.fixture(autouse=True)
def _flower_task_identity():
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0


def _context(spec_path: Path, partition: int = 0) -> Context:
    return Context(run_id=1, node_id=partition + 1, node_config={"partition-id": partition, "num-partitions": 3}, state=RecordDict(), run_config={"peel-spec": str(spec_path)})


def _message(spec_path: Path, server_round: int) -> Message:
    spec = json.loads(spec_path.read_text())
    config = ConfigRecord({"architecture": "fedavg-dp", "dp": True, "rounds": 2, "local-epochs": 1, "batch-size": 16, "learning-rate": 0.01, "server-round": server_round})
    arrays = ArrayRecord(initial_model(spec["task"]["hidden"], spec["seed"]).state_dict())
    return Message(RecordDict({"arrays": arrays, "config": config}), dst_node_id=1, message_type="train")


@pytest.fixture
def person_spec(tiny_spec: Path, tmp_path: Path) -> Path:
    """The tiny federation, its agencies' folders copied (persons.csv too), person-unit policies."""
    spec = json.loads(tiny_spec.read_text())
    for agency in spec["agencies"]:
        folder = tmp_path / agency["slug"]
        shutil.copytree(agency["folder"], folder)
        agency["folder"] = str(folder)
        agency["ledger"] = str(folder / "ledger.sqlite")
        agency["policy"] = {**agency["policy"], "unit": "person", "person_max_records": 3, "budget": 4.0}
    path = tmp_path / "federation.json"
    path.write_text(json.dumps(spec))
    read_spec.cache_clear()
    return path


def test_person_unit_round_charges_the_person_ledger_only(person_spec: Path) -> None:
    context = _context(person_spec)
    agency = locate(context)
    assert (agency.folder / "persons.csv").is_file(), "the synthetic generator writes every agency's persons.csv"
    units = units_of(agency)
    assert units.records_per_unit.max() <= 3 and units.n_units > 0
    reply = train(_message(person_spec, 1), context)
    assert reply.has_content(), reply.error.reason if reply.has_error() else ""
    metrics = reply.content["metrics"]
    path = person_ledger_path(agency.ledger)
    with Ledger.inspect(path) as ledger:
        assert ledger.pinned_neighbouring() == ADD_REMOVE_PERSON
        rows = ledger.rows()
        assert [r["architecture"] for r in rows] == ["record-count", "fedavg-dp"]
        assert metrics[EPSILON_SPENT_TO_DATE] == pytest.approx(ledger.spent())
    # the released weight is a noisy count of units (σ = the policy's count_sigma), not of records
    released = metrics[NUM_EXAMPLES]
    assert isinstance(released, int | float)
    assert abs(released - units.n_units) < 6 * agency.policy.count_sigma
    assert not agency.ledger.exists() or not Ledger.inspect(agency.ledger).rows()


def test_person_unit_without_persons_is_refused(person_spec: Path) -> None:
    context = _context(person_spec, 1)
    agency = locate(context)
    (agency.folder / "persons.csv").unlink(missing_ok=True)
    reply = train(_message(person_spec, 1), context)
    assert reply.has_error() and reply.error.code == REFUSED
    assert reply.error.reason is not None and "persons" in reply.error.reason and not person_ledger_path(agency.ledger).exists()


def test_policy_unit_from_node_config_and_bad_values() -> None:
    from federation.policy import AgencyPolicy, PolicyError

    base = AgencyPolicy(budget=4.0, delta=1e-5, max_grad_norm=5.0)
    assert (base.unit, base.person_max_records) == ("record", 5)
    node = base.with_node_config({"privacy-unit": "person", "person-max-records": "3"})
    assert (node.unit, node.person_max_records) == ("person", 3)
    with pytest.raises(PolicyError, match="unit"):
        base.with_node_config({"privacy-unit": "people"})
    with pytest.raises(PolicyError):
        base.with_node_config({"person-max-records": "0"})


def test_config_person_unit_only_for_outcome(tmp_path: Path) -> None:
    from experiments.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text("task: {name: hotspot}\nprivacy: {unit: person}\n")
    with pytest.raises(ConfigError, match="privacy.unit: person needs task.name outcome"):
        load_config(path)
    path.write_text("privacy: {unit: person, person: {max_records: 0}}\n")
    with pytest.raises(ConfigError, match="max_records"):
        load_config(path)
