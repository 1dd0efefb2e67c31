"""The architecture registry (federation/architectures.py): one declaration per architecture that
config, sweep, coordinator, runner and report read; a toy architecture added through the
registry alone runs end to end."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY

from experiments.config import ConfigError, PeelConfig, validate
from experiments.runner import run
from experiments.sweep import expand
from federation import architectures, contract
from federation.architectures import EVERY, FAULTS, Architecture
from server import robust

TOY = Architecture(
    name="fedavg-median",
    description="federated, coordinate-wise median of the updates, no DP",
    federated=True,
    privacy_unit=None,
    regime="plain",
    reads=EVERY + FAULTS,  # it fixes its aggregator, so federation.aggregator is not read
    aggregators=("median",),
    trainer="fedavg-strategy",
)


def test_built_in_entries_in_declaration_order():
    assert architectures.names() == ("central", "local", "fedavg", "fedavg-dp", "fedavg-dp-secagg", "fedavg-central-dp")
    assert architectures.federated() == ("fedavg", "fedavg-dp", "fedavg-dp-secagg", "fedavg-central-dp")
    assert architectures.baselines() == ("central", "local")
    assert architectures.record_dp() == ("fedavg-dp", "fedavg-dp-secagg")
    assert [contract.regime(a) for a in architectures.federated()] == ["plain", "dp", "dp", "plain"]
    assert contract.regime(contract.WARM_UP) == contract.regime("not-an-architecture") == "dp"
    assert architectures.get("fedavg-dp-secagg").aggregator("krum") == "fedavg"
    assert architectures.get("fedavg-dp").aggregator("krum") == "krum"


def _leaf_keys(model: type, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        inner = field.annotation
        if isinstance(inner, type) and hasattr(inner, "model_fields"):
            keys += _leaf_keys(inner, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_config_key_is_read_by_some_architecture():
    """A key no entry declares would let a sweep merge cells that differ: a new config key must be
    added to the `reads` of the architectures that read it."""
    keys = [k for k in _leaf_keys(PeelConfig) if k not in ("output", "sweep", "architectures")]
    unread = [k for k in keys if not any(a.reads_key(k) for a in architectures.REGISTRY.values())]
    assert keys and unread == []


def test_unknown_names_and_bad_entries_are_refused():
    with pytest.raises(ConfigError, match=r"architectures\.1: unknown architecture 'magic'; known: central, local"):
        validate({"architectures": ["fedavg", "magic"]}, "c.yaml")
    with pytest.raises(ValueError, match="already registered"):
        architectures.register(architectures.get("fedavg"))
    with pytest.raises(ValueError, match="does not match federated"):
        Architecture("x", "", False, None, "plain", EVERY, (), "secagg")
    with pytest.raises(ValueError, match="unknown aggregator"):
        Architecture("x", "", True, None, "plain", EVERY, ("mode",), "fedavg-strategy")
    with pytest.raises(ValueError, match="record-level DP"):
        Architecture("x", "", True, "record", "plain", EVERY, ("fedavg",), "fedavg-strategy")
    with pytest.raises(ValueError, match="built in"):
        architectures.unregister("fedavg")


def test_a_registered_architecture_is_swept_by_the_keys_it_reads():
    config = validate({**TINY, "architectures": ["fedavg"], "sweep": {"federation.aggregator": ["fedavg", "median"], "faults.dropout": [0.0, 0.1]}}, "c")
    with architectures.registered(TOY):
        cells = expand(config.model_copy(update={"architectures": ["fedavg", TOY.name]}), "c")
    per_arch = {a: sum(c.architecture == a for c in cells) for a in ("fedavg", TOY.name)}
    assert per_arch == {"fedavg": 4, TOY.name: 2}  # the toy fixes its aggregator: only dropout multiplies it
    assert TOY.name not in architectures.names()  # unregistered after the block


def test_a_toy_architecture_added_through_the_registry_alone_runs_end_to_end(tmp_path, monkeypatch):
    """FedAvg with the median under a new name: nothing but its registry entry is added; config,
    coordinator, agencies, runner and summary all take it, and the coordinator really aggregates
    its rounds by median (and fedavg's, in the same run, not)."""
    medians: list[int] = []
    aggregate = robust.RecordingMedian.aggregate_train

    def spy(self, server_round, replies):  # noqa: ANN001
        medians.append(server_round)
        return aggregate(self, server_round, replies)

    monkeypatch.setattr(robust.RecordingMedian, "aggregate_train", spy)
    with architectures.registered(TOY):
        config = validate({**TINY, "output": str(tmp_path), "architectures": ["fedavg", TOY.name]}, "tiny")
        run_dir = run(config, "tiny")
    models = run_dir / "models"
    toy, fedavg = torch.load(models / f"{TOY.name}.pt"), torch.load(models / "fedavg.pt")
    assert toy.keys() == fedavg.keys()
    assert medians == [1, 2]  # the toy's two rounds only
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    toy_rows = [r for r in rows if r["architecture"] == TOY.name]
    assert {r["round"] for r in toy_rows} == {1, 2}
    assert {r["agency"] for r in toy_rows} == {r["agency"] for r in rows if r["architecture"] == "fedavg"} and len({r["agency"] for r in toy_rows}) == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    entry = summary["architectures"][TOY.name]
    assert entry["status"] == "trained" and entry["aggregator"] == "median" and entry["privacy_unit"] is None
    assert 0 < entry["metrics"]["auc"] <= 1
    assert summary["architectures"]["fedavg"]["aggregator"] == "fedavg"
    walls = [json.loads(line)["architecture"] for line in (run_dir / "federated.jsonl").read_text().splitlines()]
    assert walls.index("fedavg") < walls.index(TOY.name)  # the coordinator trained it, in config order
