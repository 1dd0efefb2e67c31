"""The sweep grid: which cells exist, which merge, and that bad grids fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.config import ConfigError, validate
from experiments.sweep import SWEEP_FILE, _open_cell, check_sweep_dir, expand, run_sweep

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


def test_analytics_keys_are_swept_in_every_cell_and_named_apart_from_privacy_keys():
    analytics = {"queries": [{"name": "by_type", "by": ["crime_type"]}]}
    config = validate({**BASE, "architectures": ["central", "fedavg-dp"], "analytics": analytics, "sweep": {"analytics.epsilon": [0.5, 1], "privacy.epsilon": [1, 2]}}, "s.yaml")
    cells = {c.id: c for c in expand(config, "s.yaml")}
    # The analytics block runs in every run, so every architecture's cells multiply by its values.
    assert sorted(cells) == sorted(
        ["central--analytics.epsilon=0.5", "central--analytics.epsilon=1"]
        + [f"fedavg-dp--analytics.epsilon={a}--privacy.epsilon={p}" for a in ("0.5", "1") for p in ("1", "2")]
    )
    cell = cells["fedavg-dp--analytics.epsilon=0.5--privacy.epsilon=2"]
    assert cell.config.analytics is not None and cell.config.analytics.epsilon == 0.5 and cell.config.privacy.epsilon == 2


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


# ------------------------------------------------ the sweep folder, and agencies used in place


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_a_sweep_folder_must_be_new_empty_or_peels(tmp_path):
    check_sweep_dir(tmp_path / "new" / "sweep")  # created later
    (tmp_path / "empty").mkdir()
    check_sweep_dir(tmp_path / "empty")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / SWEEP_FILE).write_text(json.dumps({"cells": []}))
    check_sweep_dir(tmp_path / "ours")
    theirs = tmp_path / "theirs"
    (theirs / "cells").mkdir(parents=True)
    (theirs / "cells" / "thesis.tex").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and not a Peel sweep folder"):
        check_sweep_dir(theirs)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        check_sweep_dir(tmp_path / "file")
    from policedata.errors import DataError

    with pytest.raises(DataError, match="cannot be created"):  # a one-line error either way
        check_sweep_dir(tmp_path / "file" / "sweep")


def test_sweep_refuses_a_folder_that_is_not_peels_and_touches_nothing(tmp_path):
    theirs = tmp_path / "theirs"
    (theirs / "cells" / "central--seed=0").mkdir(parents=True)
    (theirs / "cells" / "central--seed=0" / "notes.txt").write_text("mine")
    (theirs / "data").mkdir()
    before = _tree(theirs)
    config = validate({**BASE, "architectures": ["central"], "sweep": {"seed": [0]}}, "s.yaml")
    with pytest.raises(ConfigError, match="not a Peel sweep folder"):
        run_sweep(config, "s.yaml", theirs)
    assert _tree(theirs) == before


def _agencies(tmp_path: Path) -> Path:
    from policedata.synthetic import SyntheticSpec, generate
    from privacy.ledger import Ledger

    folder = tmp_path / "agencies"
    manifest = generate(SyntheticSpec(agencies=3, incidents=3000, months=4, seed=0), folder)
    for agency in manifest["agencies"]:  # an earlier run spent from every agency's budget
        with Ledger.open(folder / agency["folder"] / "ledger.sqlite", agency["name"]) as ledger:
            ledger.set_budget(4.0, 1e-5, "an earlier run")
            ledger.charge("earlier-run", "fedavg-dp", 1, (1.1, 0.05, 20), delta=1e-5, accountant="rdp", budget=4.0)
    return folder


def test_a_record_dp_sweep_over_agencies_used_in_place_is_refused_before_anything_is_written(tmp_path):
    """It trained every cell on fresh per-cell ledgers: the agencies' real budgets were bypassed."""
    folder = _agencies(tmp_path)
    before = _tree(tmp_path)
    raw = {"data": {"source": "agencies", "path": str(folder)}, "task": {"test_months": 1, "hidden": [8]}, "federation": {"rounds": 1}}
    config = validate({**raw, "architectures": ["central", "fedavg-dp"], "sweep": {"privacy.epsilon": [1, 2]}}, "s.yaml")
    with pytest.raises(ConfigError, match="s.yaml: sweep over data.source agencies with fedavg-dp: .*real budgets"):
        run_sweep(config, "s.yaml", tmp_path / "sweep")
    assert _tree(tmp_path) == before


def test_other_cells_over_agencies_used_in_place_use_the_agencies_own_ledgers(tmp_path):
    from experiments.prepare import materialise

    folder = _agencies(tmp_path)
    raw = {"data": {"source": "agencies", "path": str(folder)}, "task": {"test_months": 1, "hidden": [8]}, "federation": {"rounds": 1}}
    config = validate({**raw, "architectures": ["fedavg", "fedavg-central-dp"], "sweep": {"seed": [0, 1]}}, "s.yaml")
    for cell in expand(config, "s.yaml"):
        run_folder = _open_cell(tmp_path / "sweep", cell, materialise(cell.config, tmp_path / "unused"), "s.yaml")
        ledgers = {Path(a["ledger"]) for a in run_folder.federation.agencies}
        assert ledgers == {Path(a["folder"]) / "ledger.sqlite" for a in run_folder.federation.agencies}
        assert all(p.is_relative_to(folder.resolve()) for p in ledgers)


def test_a_long_swept_value_gives_a_cell_folder_name_the_filesystem_accepts(tmp_path):
    cells = _cells({"task.hidden": [[4] * 130, [4] * 131]}, ["fedavg"])
    assert len(cells) == 2 and all(len(c) <= 120 for c in cells)  # distinct despite a shared start
    for cell_id in cells:
        (tmp_path / cell_id).mkdir()
