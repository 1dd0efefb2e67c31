"""`peel analyze CONFIG` with a `sweep:` grid over analytics keys (and seed, privacy.*, data.*):
one analytics run per cell, `analytics-sweep.csv` (one row per cell and query: the swept values,
ε per agency after, MAE, relative error, top-k overlap and PAI) and a figure of error against ε
per mode (`analytics-sweep.png`). Each cell is its own run folder with its own agencies and
ledgers (alternative worlds: spends do not carry from cell to cell)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from experiments.analyze import analyze
from experiments.config import ConfigError, PeelConfig, dump, set_override, to_dict, validate
from experiments.report.figure import _png
from privacy.durable import replace_durably

SWEEPABLE = ("analytics.", "seed", "privacy.", "data.")
MAX_ANALYTICS_CELLS = 200
SWEEP_CSV = "analytics-sweep.csv"
SWEEP_PNG = "analytics-sweep.png"


def cells(config: PeelConfig, where: str) -> list[tuple[dict[str, Any], PeelConfig]]:
    """(swept values, config) of every cell of the grid, validated before anything runs."""
    grid = config.sweep or {}
    bad = [k for k in grid if not k.startswith(SWEEPABLE)]
    if bad:
        raise ConfigError(f"{where}: sweep: peel analyze sweeps analytics.*, seed, privacy.* and data.* keys, not {bad[0]!r} (peel sweep runs the architectures)")
    size = math.prod(len(v) for v in grid.values())
    if size > MAX_ANALYTICS_CELLS:
        raise ConfigError(f"{where}: sweep: {size:,} cells; at most {MAX_ANALYTICS_CELLS} for peel analyze")
    base = to_dict(config)
    base.pop("sweep")
    out = []
    for combination in itertools.product(*grid.values()):
        values = dict(zip(grid, combination, strict=True))
        raw = json.loads(json.dumps(base))
        for key, value in values.items():
            set_override(raw, f"{key}={json.dumps(value)}")
        out.append((values, validate(raw, f"{where}: sweep cell {values}")))
    return out


def _rows(values: dict[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    block = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["analytics"]
    rows = []
    for name, q in block["queries"].items():
        rows.append({
            **values, "run": run_dir.name, "query": name, "kind": q["kind"], "mode": q["mode"], "noise": q.get("noise") or "none", "epsilon": block["epsilon"],
            "max_epsilon_after": max(q["epsilon_after"].values()) if q.get("epsilon_after") else None, "released_sigma": q.get("released_sigma"),
            "mae": q.get("mae"), "relative_error": q.get("relative_error"), "overlap": q.get("overlap"), "pai": q.get("pai"), "pai_exact": q.get("pai_exact"),
            "unit": q.get("unit", "record"), "dropped_by_person_cap": q.get("dropped_by_person_cap"), "refused": q.get("refused"),
        })
    return rows


def _figure(frame: pd.DataFrame) -> bytes:
    """MAE against ε per mode, one panel per query (a line per mode and noise: the mean over the
    other swept keys; the noise is named only where the sweep used more than one)."""
    queries = list(dict.fromkeys(frame["query"]))
    fig = Figure(figsize=(4.2 * len(queries), 3.6))
    for i, query in enumerate(queries):
        ax = fig.add_subplot(1, len(queries), i + 1)
        part = frame[(frame["query"] == query) & frame["refused"].isna()]
        several = part.loc[part["noise"] != "none", "noise"].nunique() > 1  # central adds no noise
        for (mode, noise), lines in part.groupby(["mode", "noise"]):
            mean = lines.groupby("epsilon")["mae"].mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o", label=f"{mode}, {noise}" if several and noise != "none" else str(mode))
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers, not mathtext powers of ten
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xticks(sorted(part["epsilon"].unique()))
        ax.set_xlabel("ε per agency (analytics block)")
        ax.set_ylabel("mean absolute error per cell")
        ax.set_title(query, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def analyze_sweep(config: PeelConfig, config_file: str) -> Path:
    """Run every cell; the sweep folder's path."""
    where = config_file or "config"
    grid = cells(config, where)
    digest = hashlib.sha256(dump(config).encode()).hexdigest()[:8]
    sweep_dir = Path(config.output) / f"analytics-sweep-{Path(config_file).stem or 'config'}-{digest}"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for values, cell in grid:
        run_dir = analyze(cell.model_copy(update={"output": str(sweep_dir / "cells")}), config_file)
        rows.extend(_rows(values, run_dir))
    frame = pd.DataFrame(rows)
    replace_durably(sweep_dir / SWEEP_CSV, frame.to_csv(index=False, float_format="%.6g"), sync=False)
    replace_durably(sweep_dir / SWEEP_PNG, _figure(frame), sync=False)
    return sweep_dir
