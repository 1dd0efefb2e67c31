"""Square grid cells for the hotspot baselines (``task.hotspot.cells: grid``), instead of LSOAs.

Each record with coordinates falls in the ``grid_m`` × ``grid_m`` square (metres, on a local flat
map: longitude scaled by cos of the agency's mean latitude) that holds it. The cells of an agency
are the squares holding at least one of its located records in the whole period: there is no
public boundary polygon to intersect a grid with, and police.uk places every record on one of a
fixed set of anonymous map points, so these are the squares that hold a map point the agency has
used. Area shares therefore count cells that can hold a record, not land.

**What a grid cannot say.** police.uk snaps each location to the nearest of those map points (a
street segment's centre, a public place), so a square of 250 m holds whole snapped points, not the
true locations: results on a grid show where the snapped points are, and no claim at street level
follows from them.

The models of the hotspot task learn on LSOA examples and are not scored on a grid; the grid
evaluation holds the baselines only (no oracle either: the generator's truth is per LSOA).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.hotspot import HotspotSplit
from tasks.hotspot_baselines import EARTH_RADIUS_M, HotspotBaselines, baseline_maps, evaluate_maps, sepp_map
from tasks.sepp import SeppFit

GRID_M = 250.0
MAX_GRID_CELLS = 8000  # dense cell-to-cell distances: 8000² floats is 0.5 GB


@dataclass(frozen=True)
class GridPanel:
    """An agency's located records counted per grid cell (rows) and month (columns)."""

    agency: str
    cells: np.ndarray  # str "column:row" of the square on the agency's grid
    centres: np.ndarray  # float (cells, 2), metres
    months: list[str]
    counts: np.ndarray  # int64 (cells, months)
    unlocated: int  # records without coordinates (counted nowhere)


def grid_panel(records: pd.DataFrame, months: list[str], grid_m: float = GRID_M, agency: str = "") -> GridPanel:
    """Count ``records`` (``month``, ``longitude``, ``latitude``) per ``grid_m`` square and month
    of ``months`` (records of other months are left out)."""
    if not grid_m > 0:
        raise ValueError(f"hotspot grid: grid_m={grid_m} must be a positive number of metres.")
    missing = [c for c in ("month", "longitude", "latitude") if c not in records.columns]
    if missing:
        raise ValueError(f"hotspot grid: the records of {agency!r} lack column(s) {missing}.")
    lon = pd.to_numeric(records["longitude"], errors="coerce").to_numpy(np.float64)
    lat = pd.to_numeric(records["latitude"], errors="coerce").to_numpy(np.float64)
    month = pd.Index(months).get_indexer(records["month"].astype("string").fillna(""))
    located = np.isfinite(lon) & np.isfinite(lat)
    keep = located & (month >= 0)
    if not keep.any():
        raise ValueError(f"hotspot grid: no record of {agency!r} has coordinates inside the period.")
    scale = np.cos(np.radians(lat[keep].mean()))
    x = np.radians(lon[keep]) * scale * EARTH_RADIUS_M
    y = np.radians(lat[keep]) * EARTH_RADIUS_M
    col, row = np.floor(x / grid_m).astype(np.int64), np.floor(y / grid_m).astype(np.int64)
    keys, cell = np.unique(np.stack([col, row], axis=1), axis=0, return_inverse=True)
    cell = cell.reshape(-1)
    if len(keys) > MAX_GRID_CELLS:
        raise ValueError(f"hotspot grid: {agency!r} has {len(keys)} cells of {grid_m:g} m, more than {MAX_GRID_CELLS}; use a larger task.hotspot.grid_m.")
    counts = np.bincount(cell * len(months) + month[keep], minlength=len(keys) * len(months)).reshape(len(keys), len(months))
    names = np.array([f"{c}:{r}" for c, r in keys], dtype=str)
    centres = (keys + 0.5) * grid_m
    return GridPanel(agency, names, centres.astype(np.float64), list(months), counts.astype(np.int64), int((~located).sum()))


def grid_split(panel: GridPanel, test_from: str) -> HotspotSplit:
    """The panel's test rows (label months >= ``test_from``) in the shape the coverage metrics
    read: the cell, the label month, its count, and the month before's count as ``count_lag1``."""
    first = panel.months.index(test_from) if test_from in panel.months else -1
    if first < 1:
        raise ValueError(f"hotspot grid: test month {test_from!r} must be in the period after its first month.")
    n_cells, n_months = panel.counts.shape
    label = np.arange(first, n_months)
    months = np.repeat(np.asarray(panel.months)[label], n_cells)
    areas = np.tile(panel.cells, len(label))
    actual = panel.counts[:, label].T.reshape(-1)
    prior = panel.counts[:, label - 1].T.reshape(-1)
    empty = np.zeros((0, 1), dtype=np.float32)
    return HotspotSplit(
        X_train=empty,
        y_train=np.zeros(0, np.float32),
        X_test=np.log1p(prior.astype(np.float64)).astype(np.float32)[:, None],
        y_test=np.zeros(len(actual), np.float32),
        feature_names=["count_lag1"],
        counts={"n_areas": n_cells, "n_test": len(actual), "rows_unknown_area": panel.unlocated},
        test_areas=areas,
        test_months=months,
        test_next_counts=actual.astype(np.int64),
        test_deprivation=np.zeros(len(actual)),
        k=0,
        agency=panel.agency,
        record_influence=0,
    )


def grid_scores(panel: GridPanel, test_from: str) -> tuple[dict[str, np.ndarray], SeppFit]:
    """Every baseline's scores of the panel's test rows (as ``grid_split`` orders them), SEPP
    fitted on the months before ``test_from``."""
    centres = panel.centres
    distances = np.hypot(centres[:, None, 0] - centres[None, :, 0], centres[:, None, 1] - centres[None, :, 1])
    maps = baseline_maps(panel.counts, distances)
    first = panel.months.index(test_from)
    maps["sepp"], fit = sepp_map(panel.counts, distances, first)
    return {name: values[:, first:].T.reshape(-1) for name, values in maps.items()}, fit


def evaluate_grid(
    records: Mapping[str, pd.DataFrame],
    months: list[str],
    test_from: str,
    grid_m: float = GRID_M,
    *,
    replicates: int = 1000,
    seed: int = 0,
) -> HotspotBaselines:
    """The baselines of every agency (``records``: name -> its records) on ``grid_m`` squares."""
    if not records:
        raise ValueError("hotspot grid: no agencies.")
    splits: dict[str, HotspotSplit] = {}
    scores: dict[str, dict[str, np.ndarray]] = {}
    fits: dict[str, SeppFit] = {}
    for name, frame in records.items():
        panel = grid_panel(frame, months, grid_m, name)
        splits[name] = grid_split(panel, test_from)
        scores[name], fits[name] = grid_scores(panel, test_from)
    return evaluate_maps(splits, scores, (), fits, replicates=replicates, seed=seed, cells=f"{grid_m:g} m grid squares")
