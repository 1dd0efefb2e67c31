"""`peel sweep` reuses finished cells when values are added (a cell is its config, not its
position) and prints a results table; tiny central-only grids (seconds, no Flower)."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.config import PeelConfig, validate
from experiments.sweep import CELL_FILE, SWEEP_FILE, format_table, new_sweep_dir, run_sweep

BASE = {
    "seed": 1,
    "data": {"agencies": 3, "incidents": 3000, "months": 8},
    "task": {"test_months": 2, "hidden": [8]},
    "federation": {"rounds": 1, "batch_size": 64},
    "architectures": ["central"],
    "audit": False,
}


def _config(tmp_path: Path, sweep: dict, **changes: object) -> PeelConfig:
    return validate({**BASE, **changes, "output": str(tmp_path / "out"), "sweep": sweep}, "s.yaml")


def _mtimes(sweep_dir: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (sweep_dir / "cells").glob("*/summary.json")}


def test_adding_a_value_reuses_the_finished_cells_and_runs_only_the_new_one(tmp_path: Path) -> None:
    first = _config(tmp_path, {"task.hidden": [[8], [4]]})
    sweep_dir = run_sweep(first, "s.yaml")
    before = _mtimes(sweep_dir)
    assert len(before) == 2

    wider = _config(tmp_path, {"task.hidden": [[8], [4], [16]]})
    assert new_sweep_dir(wider, "s.yaml") == new_sweep_dir(first, "s.yaml") == sweep_dir  # same folder by default
    assert run_sweep(wider, "s.yaml") == sweep_dir
    after = _mtimes(sweep_dir)
    assert len(after) == 3
    assert {cell: after[cell] for cell in before} == before  # untouched: reused, not re-run
    index = json.loads((sweep_dir / SWEEP_FILE).read_text())
    state = {e["cell"]: (e["status"], e["reused"]) for e in index["cells"]}
    assert sorted(state.values()) == [("done", False), ("done", True), ("done", True)]

    table = format_table(sweep_dir)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["cell", "architecture", "task.hidden"]
    assert sum("reused" in line for line in lines) == 2 and sum("run now" in line for line in lines) == 1
    for cell in after:
        summary = json.loads((sweep_dir / "cells" / cell / "summary.json").read_text())
        auc = summary["architectures"]["central"]["metrics"]["auc"]
        (row,) = [line for line in lines if line.startswith(cell + " ")]
        assert f"{auc:.3f}" in row
    reference = json.loads((sweep_dir / "cells" / cell / "summary.json").read_text())["reference"]["logistic_regression"]["metrics"]["auc"]
    assert f"pooled logistic regression on the same features, AUC {reference:.3f}" in table


def test_a_cell_whose_config_changed_under_the_same_name_is_run_again(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run_sweep(_config(tmp_path, {"task.hidden": [[8]]}), "s.yaml", sweep_dir)
    (cell,) = (sweep_dir / "cells").iterdir()
    before = json.loads((cell / CELL_FILE).read_text())["config_sha256"]
    old = _mtimes(sweep_dir)
    # same cell name (same swept value), another base config: its old result must not be reused
    run_sweep(_config(tmp_path, {"task.hidden": [[8]]}, federation={"rounds": 2, "batch_size": 64}), "s.yaml", sweep_dir)
    assert json.loads((cell / CELL_FILE).read_text())["config_sha256"] != before
    assert _mtimes(sweep_dir)[cell.name] != old[cell.name]
    assert "run now" in format_table(sweep_dir)
    assert "small test sets, metrics not solid: " in format_table(sweep_dir)  # 3 small agencies, test_months 2


def test_the_sweep_report_lists_each_cells_reference(tmp_path: Path) -> None:
    from experiments.report import reference_section
    from experiments.report.load import load

    sweep_dir = run_sweep(_config(tmp_path, {"task.hidden": [[8], [4]]}), "s.yaml")
    reference, small = reference_section.tables(load(sweep_dir))
    assert reference.header[0] == "cell" and len(reference.rows) == 4  # 2 cells × (LR, base rate)
    assert {row[0] for row in small.rows} == {p.name for p in (sweep_dir / "cells").iterdir()}
