"""Read a run folder or a sweep folder into tidy tables that every part of the report draws from.

A run is treated as a sweep of one cell, so plots, tables and the reading have one code path.
Everything optional in summary.json (audit, fairness, Bayes ceiling, privacy unit, per-agency
records moved) may be absent: the tables then hold NaN/None and the report says "not measured".
The Study it reads into is in experiments/report/study.py, its tidy tables are made in
experiments/report/tidy.py (their names re-exported here).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from experiments.report.study import BAYES, CHANCE, LABELS, METRIC_COLUMNS, Cell, ReportError, Study, _read_json
from experiments.report.tidy import POISONING_KEYS, _study, attack_label


def load(folder: Path) -> Study:
    """The study in `folder`: a sweep if it holds sweep.json, a run if it holds summary.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder (give a run folder runs/<id> or a sweep folder)")
    if (folder / "sweep.json").exists():
        return _load_sweep(folder)
    if (folder / "summary.json").exists():
        return _load_run(folder)
    raise ReportError(f"{folder}: neither summary.json (a run folder) nor sweep.json (a sweep folder) is in it")


# --- runs -----------------------------------------------------------------------------------------


def _load_run(folder: Path) -> Study:
    summary = _read_json(folder / "summary.json")
    if not isinstance(summary.get("architectures"), dict) or not summary["architectures"]:
        raise ReportError(f"{folder / 'summary.json'}: lists no architectures (is the run finished?)")
    cell = Cell(name=summary.get("run_id") or folder.name, folder=folder, values={}, status="done", summary=summary, source="summary.json")
    study = _study("run", folder, summary.get("run_id") or folder.name, summary.get("config_file"), summary, [cell], [])
    study.sources = [
        ("summary.json", "every metric, ε, attack, fairness, records and bytes moved, wall time"),
        ("config.yaml", "the ε budgets (privacy.epsilon, privacy.budgets, privacy.central.epsilon) and the seed"),
        ("metrics.jsonl", "each agency's ε budget as it recorded it (epsilon_budget), where present"),
    ]
    if summary.get("config_file"):
        study.sources.append((str(summary["config_file"]), "the experiment config the run was started with"))
    return study


# --- sweeps ---------------------------------------------------------------------------------------


def _load_sweep(folder: Path) -> Study:
    spec = _read_json(folder / "sweep.json")
    swept = [str(k) for k in spec.get("swept_keys") or []]
    csv_rows = _read_csv(folder / "sweep.csv")
    cells, missing = [], []
    for entry in spec.get("cells") or []:
        name = str(entry.get("cell"))
        run_dir = _cell_folder(folder, name, entry.get("run_dir"))
        summary, source = None, ""
        if run_dir is not None and (run_dir / "summary.json").exists():
            summary, source = _read_json(run_dir / "summary.json"), _rel(run_dir / "summary.json", folder)
        elif csv_rows is not None and name in set(csv_rows["cell"].astype(str)):
            summary, source = _summary_from_csv(csv_rows[csv_rows["cell"].astype(str) == name]), "sweep.csv"
        if summary is None or not summary.get("architectures"):
            missing.append(f"{name} ({entry.get('status') or 'no results'})")
            continue
        cells.append(Cell(name, run_dir, dict(entry.get("values") or {}), str(entry.get("status") or ""), summary, source))
    if not cells:
        raise ReportError(f"{folder / 'sweep.json'}: no cell has results yet (neither cells/<cell>/summary.json nor rows in sweep.csv)")
    first = cells[0].summary
    study = _study("sweep", folder, spec.get("sweep_id") or folder.name, spec.get("config_file"), first, cells, swept)
    study.missing = missing
    study.sources = [
        ("sweep.json", "the cells and the values of the swept keys in each"),
        ("cells/<cell>/summary.json", "each cell's metrics, ε, attack, fairness, records and bytes moved, wall time"),
        ("cells/<cell>/config.yaml", "each cell's ε budgets and seed"),
        ("sweep.csv", "a cell's numbers when its summary.json is absent (overall = test-weighted mean of its agencies)"),
    ]
    if spec.get("config_file"):
        study.sources.append((str(spec["config_file"]), "the sweep config"))
    return study


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _cell_folder(sweep_dir: Path, name: str, run_dir: object) -> Path | None:
    candidates = [sweep_dir / "cells" / name]
    if run_dir:
        run_path = Path(str(run_dir))
        candidates += [run_path] if run_path.is_absolute() else [sweep_dir / run_path, run_path]
    return next((c for c in candidates if c.is_dir()), None)


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot be read as CSV ({exc})") from None


def _summary_from_csv(rows: pd.DataFrame) -> dict:
    """A summary.json-shaped dict from one cell's sweep.csv rows: per-agency values as given,
    overall metrics as the test-weighted mean of the agencies (how summary.json defines them)."""

    def value(row: pd.Series, key: str) -> object:
        v = row.get(key)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else (v.item() if hasattr(v, "item") else v)

    archs, bayes = {}, None
    for arch, group in rows.groupby("architecture", sort=False):
        per_agency = {}
        for _, row in group.iterrows():
            per_agency[str(row["agency"])] = {
                "metrics": {k: value(row, k) for k in METRIC_COLUMNS if k in row.index},
                "epsilon": value(row, "epsilon"),
                "n_train": value(row, "n_train"),
                "n_test": value(row, "n_test"),
                "records_moved": value(row, "records_moved"),
                "update_bytes_sent": value(row, "update_bytes_sent"),
            }
        overall = _weighted({a: p["metrics"] for a, p in per_agency.items()}, {a: p["n_test"] or 0 for a, p in per_agency.items()})
        if arch == BAYES:
            bayes = {"metrics": overall, "per_agency": {a: p["metrics"] for a, p in per_agency.items()}}
            continue
        eps = [p["epsilon"] for p in per_agency.values() if p["epsilon"] is not None]
        walls = [value(r, "wall_s") for _, r in group.iterrows() if value(r, "wall_s") is not None]
        archs[str(arch)] = {
            "metrics": overall,
            "per_agency": per_agency,
            "epsilon_max": max(eps) if eps else None,
            "records_moved": sum(p["records_moved"] or 0 for p in per_agency.values()),
            "update_bytes": sum(p["update_bytes_sent"] or 0 for p in per_agency.values()),
            "wall_s": walls[0] if walls else None,
        }
    agencies = rows[rows["architecture"] != BAYES].drop_duplicates("agency")
    return {
        "architectures": archs,
        "bayes_optimal": bayes,
        "agencies": [{"name": str(r["agency"]), "n_train": value(r, "n_train"), "n_test": value(r, "n_test")} for _, r in agencies.iterrows()],
    }


def _weighted(per_agency: dict[str, dict], weights: dict[str, float]) -> dict:
    out = {}
    keys = {k for m in per_agency.values() for k in m}
    for key in keys:
        pairs = [(m[key], weights[a]) for a, m in per_agency.items() if m.get(key) is not None and weights[a] > 0]
        total = sum(w for _, w in pairs)
        out[key] = sum(v * w for v, w in pairs) / total if total else None
    return out


__all__ = ["BAYES", "CHANCE", "LABELS", "METRIC_COLUMNS", "POISONING_KEYS", "Cell", "ReportError", "Study", "attack_label", "load"]
