"""summary.json's ``hotspot_baselines``: every architecture's final models next to the analysts'
baselines (naive counts, KDE, ProMap-style, SEPP, the oracle on synthetic data) at 1%, 5% and 10%
of areas, with block-bootstrap intervals over test months (``tasks.hotspot_baselines``); with
``task.hotspot.cells: grid``, also the baselines on ``grid_m`` squares (``grid``,
``tasks.hotspot_grid``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from experiments.run_folder import RunFolder, model_of
from policedata.loader import load_street_folder
from policedata.synthetic import month_range
from tasks.hotspot import HotspotSplit
from tasks.hotspot_baselines import evaluate_baselines
from tasks.hotspot_grid import evaluate_grid
from tasks.train import predict_proba


def hotspot_baselines(folder: RunFolder) -> dict[str, Any] | None:
    """The models and baselines of a hotspot run folder whose architectures have run (None for
    another task). Computed by the evaluation harness, which holds every agency's records."""
    if folder.config.task.name != "hotspot" or folder.federation.areas is None:
        return None
    splits = {name: split for name, split in folder.splits.items() if isinstance(split, HotspotSplit)}
    models = {arch: {name: predict_proba(model_of(folder.models[arch], name), split.X_test) for name, split in splits.items()} for arch in folder.config.architectures if arch in folder.models}
    result = evaluate_baselines(splits, folder.areas, folder.intensity, models, seed=folder.config.seed).as_dict()
    cells = folder.config.task.hotspot
    if cells.cells == "grid":
        try:
            result["grid"] = evaluate_grid(_records(folder, list(splits)), _months(folder), folder.federation.test_from, cells.grid_m, seed=folder.config.seed).as_dict()
        except ValueError as exc:  # e.g. too many cells for grid_m: said in the summary, not a failed run after training
            result["grid"] = {"cells": f"{cells.grid_m:g} m grid squares", "not_computed": str(exc)}
    return result


def _records(folder: RunFolder, names: list[str]) -> dict[str, pd.DataFrame]:
    """Each agency's records with their coordinates, read from its own folder."""
    agency = folder.config.data.agency
    out = {}
    for entry in folder.federation.agencies:
        if entry["name"] in names:
            records, _ = load_street_folder(Path(entry["folder"]), agency.column, agency.pattern)
            out[entry["name"]] = records[records["agency"] == entry["name"]]
    return out


def _months(folder: RunFolder) -> list[str]:
    period = folder.federation.period
    if period is None:
        raise ValueError(f"{folder.run_dir}: the hotspot grid needs the run's period")
    first, last = period
    n = (int(last[:4]) - int(first[:4])) * 12 + int(last[5:7]) - int(first[5:7]) + 1
    return month_range(first, n)
