"""Sweep throughput: wall time of the default ε sweep (`peel sweep configs/sweep-epsilon.yaml`,
54 cells) and the Flower start-up it pays per cell, each repeat a fresh sweep in a subprocess.

`--quick`: 2 ε × 1 seed of fedavg-dp (2 cells), 20,000 records, 3 rounds. Full: the whole sweep, at most 3 repeats (each one is minutes long).

The federated engine is Peel's own (in-process); `scale.ENGINE` (peel bench --engine ray) runs the
same sweep on Flower's Ray simulation instead, for a before/after.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from . import scale
from .common import Measurement, Settings, shared_run, summary

SWEEP_CONFIG = "configs/sweep-epsilon.yaml"
QUICK = [
    "sweep={privacy.epsilon: [1, 4], seed: [0]}",
    "architectures=[fedavg-dp]",
    "data.incidents=20000",
    "federation.rounds=3",
]
FULL_REPEATS = 3  # a full sweep takes minutes: three is the minimum for a median and a spread


def _cells(sweep_dir: Path) -> list[dict]:
    """Per cell of a finished sweep: its architecture, Flower start-up and training wall time."""
    index = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    cells = []
    for cell in index["cells"]:
        summary_ = json.loads((sweep_dir / cell["run_dir"] / "summary.json").read_text(encoding="utf-8"))
        arch = cell["architecture"]
        cells.append({"architecture": arch, "startup_s": summary_.get("flower_startup_s"), "train_s": summary_["architectures"][arch]["wall_s"]})
    return cells


def sweep_throughput(settings: Settings) -> dict[str, dict]:
    repeats = settings.repeats if settings.quick else min(settings.repeats, FULL_REPEATS)
    overrides = [a for o in (QUICK if settings.quick else []) for a in ("--set", o)]
    walls, cpus, startups, overheads, n_cells, n_federated = [], [], [], [], 0, 0
    with tempfile.TemporaryDirectory(prefix="peel-bench-sweep-") as tmp:
        for r in range(repeats):
            sweep_dir = Path(tmp) / f"sweep{r}"
            run = scale.run_measured(["sweep", SWEEP_CONFIG, "--dir", str(sweep_dir), *overrides], Path(tmp) / f"log{r}", timeout=3 * 3600)
            cells = _cells(sweep_dir)
            n_cells, n_federated = len(cells), sum(c["startup_s"] is not None for c in cells)
            wall = run["wall_s"]
            walls.append(wall)
            cpus.append(run["cpu_s"])
            # Start-up per cell: what Peel records (the agencies' first reply; under Ray it does
            # not include Ray's own init, which the overhead below catches).
            startups.append(sum(c["startup_s"] or 0.0 for c in cells) / len(cells))
            # Everything but training, per cell: process start, data, start-ups, scoring, reports.
            overheads.append((wall - sum(c["train_s"] for c in cells)) / len(cells))
    detail = {"cells": n_cells, "federated_cells": n_federated, "engine": scale.ENGINE, "clock": "wall time of the whole `peel sweep`"}
    return {
        # cpu_s: CPU of the sweep process and the children it reaped (all of it in-process;
        # Ray's workers are not its children, so under Ray it undercounts).
        "sweep_seconds": summary(walls, cells_per_minute=n_cells / statistics.median(walls) * 60, cpu_s=statistics.median(cpus), **detail),
        "sweep_startup_seconds_per_cell": summary(startups, overhead_s_per_cell=statistics.median(overheads), **detail),
    }


_part = shared_run(sweep_throughput)  # one set of sweeps serves both keys


MEASUREMENTS = [
    Measurement("sweep_seconds", "s", _part("sweep_seconds"), about="default ε sweep (peel sweep), wall"),
    Measurement("sweep_startup_seconds_per_cell", "s", _part("sweep_startup_seconds_per_cell"), about="Flower start-up paid per sweep cell"),
]
