"""What the report reads a folder into (a Study of Cells with tidy tables) and the small readers
its loaders share; experiments/report/load.py does the reading."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

# The score a model with no information reaches (random ranking / random flagging).
CHANCE = {"auc": 0.5, "pai": 1.0}
LABELS = {"auc": "AUC", "pai": "PAI", "pei": "PEI", "hit_rate": "hit rate", "accuracy": "accuracy"}
METRIC_COLUMNS = ("auc", "accuracy", "f1", "log_loss", "brier", "hit_rate", "pai", "pei")
BAYES = "bayes-optimal"


class ReportError(Exception):
    """A folder that cannot be reported on; the message is one line naming the file."""


@dataclass
class Cell:
    name: str
    folder: Path | None  # the cell's run folder (None: only sweep.csv rows)
    values: dict
    status: str
    summary: dict | None
    source: str  # which file the cell's numbers come from


@dataclass
class Study:
    kind: str  # "run" or "sweep"
    folder: Path
    study_id: str
    config_file: str | None
    task: str
    headline: str
    swept_keys: list[str]
    cells: list[Cell]
    archs: pd.DataFrame  # one row per (cell, architecture)
    agencies: pd.DataFrame  # one row per (cell, architecture, agency)
    quintiles: pd.DataFrame  # one row per (cell, architecture, deprivation quintile)
    privacy_notes: dict = field(default_factory=dict)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (file, what the report took from it)
    missing: list[str] = field(default_factory=list)  # cells listed but without results

    @property
    def chance(self) -> float | None:
        return CHANCE.get(self.headline)

    @property
    def headline_label(self) -> str:
        return LABELS.get(self.headline, self.headline)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{path}: cannot be read as YAML ({exc})") from None
    return data if isinstance(data, dict) else {}


def _num(value: object) -> float:
    """A number or NaN (None, strings, booleans and non-finite values become NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _get(data: dict | None, *path: str) -> object:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
