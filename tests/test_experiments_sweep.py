"""The sweep grid: which cells exist, which merge, and that bad grids fail in one line."""

from __future__ import annotations

import pytest

from experiments.config import ConfigError, validate
from experiments.sweep import expand

BASE = {"data": {"agencies": 3, "incidents": 4000, "months": 12}, "task": {"test_months": 3}}


def _cells(sweep: dict, architectures: list[str]) -> dict[str, dict]:
    config = validate({**BASE, "architectures": architectures, "sweep": sweep}, "s.yaml")
    return {c.id: c for c in expand(config, "s.yaml")}


def test_keys_an_architecture_ignores_do_not_multiply_its_cells():
    cells = _cells({"privacy.epsilon": [0.5, 1, 2], "seed": [0, 1]}, ["central", "fedavg", "fedavg-dp"])
    assert len([c for c in cells.values() if c.architecture == "fedavg-dp"]) == 6
    assert len([c for c in cells.values() if c.architecture == "central"]) == 2
    assert cells["central--seed=1"].values == {"privacy.epsilon": None, "seed": 1}
    dp = cells["fedavg-dp--epsilon=2--seed=0"]
    assert dp.config.privacy.epsilon == 2 and dp.config.seed == 0 and dp.config.architectures == ["fedavg-dp"]


def test_central_dp_uses_its_own_keys_but_not_record_level_ones():
    cells = _cells({"privacy.max_grad_norm": [1, 5], "privacy.epsilon": [1, 2]}, ["fedavg-dp", "fedavg-central-dp"])
    assert len([c for c in cells.values() if c.architecture == "fedavg-dp"]) == 4
    assert len([c for c in cells.values() if c.architecture == "fedavg-central-dp"]) == 2


def test_faults_multiply_only_the_federated_cells():
    cells = _cells({"faults.dropout": [0.0, 0.2], "seed": [0, 1]}, ["central", "local", "fedavg-dp"])
    assert len([c for c in cells.values() if c.architecture == "fedavg-dp"]) == 4
    assert len([c for c in cells.values() if c.architecture in ("central", "local")]) == 4
    assert {c.config.faults.dropout for c in cells.values() if c.architecture == "fedavg-dp"} == {0.0, 0.2}


def test_architectures_and_data_size_can_be_swept():
    cells = _cells({"architectures": ["fedavg", ["local", "fedavg-dp"]], "data.agencies": [3, 4]}, ["central"])
    assert sorted(c.architecture for c in cells.values()) == sorted(["fedavg", "local", "fedavg-dp"] * 2)
    agencies = {c.config.data.agencies for c in cells.values()}
    assert agencies == {3, 4}
    # Cells on the same data share its generation.
    by_data = {}
    for cell in cells.values():
        by_data.setdefault(cell.data_key, set()).add(cell.config.data.agencies)
    assert len(by_data) == 2 and all(len(v) == 1 for v in by_data.values())


def test_a_bad_value_names_the_cell_and_key():
    config = validate({**BASE, "sweep": {"privacy.epsilon": [1, -1]}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: sweep privacy.epsilon=-1: privacy.epsilon"):
        expand(config, "s.yaml")


@pytest.mark.parametrize(
    "sweep, message",
    [({"privacy.nope": [1]}, "not a config key"), ({"seed": []}, "has no values"), ({}, "names no key"), ({"output": ["a"]}, "cannot sweep")],
)
def test_bad_grids_fail_at_validation(sweep, message):
    with pytest.raises(ConfigError, match=message):
        validate({**BASE, "sweep": sweep}, "s.yaml")


def test_a_config_without_sweep_is_refused():
    with pytest.raises(ConfigError, match="no sweep section"):
        expand(validate(BASE, "s.yaml"), "s.yaml")
