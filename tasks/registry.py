"""The tasks Peel can learn, behind one front door: how to build an agency's split, how wide
the model's input is, how to score predictions, and the ground-truth ceiling.

`task` below is the federation spec's task block: {"name", "test_from", "positive",
"hotspot_share", "period", "features"} ("features": a `features.FeatureLayout.as_dict()`, or
None for the data.police.uk layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks import features, hotspot
from tasks.hotspot import HotspotSplit, build_hotspot_split
from tasks.hotspot_metrics import hotspot_metrics, oracle_scores
from tasks.metrics import binary_metrics
from tasks.outcome import OutcomeSplit, build_outcome_split

Split = OutcomeSplit | HotspotSplit

# The figure a reader should look at first, per task.
HEADLINE = {"outcome": "auc", "hotspot": "pai"}
# What one training example is, i.e. the unit record-level DP-SGD protects directly. A hotspot
# example is an area-month of a fixed public set: per example the relation is replace-one, and
# one incident record changes up to split.record_influence of them (privacy.group.incident_epsilon).
DP_EXAMPLE = {"outcome": "record", "hotspot": "area-month"}
# The neighbouring relation each task's DP-SGD examples are accounted for: an outcome agency's
# record count never leaves it exactly (add/remove-one); hotspot examples are the area-months of
# the public areas table and period, a fixed set whose contents change (replace-one).
NEIGHBOURING = {"outcome": "add-remove", "hotspot": "replace-one"}
# The unit a hotspot reader can state, with the relation it is accounted under.
HOTSPOT_UNIT = {"unit": "one incident record", "neighbouring": "add-remove", "example_neighbouring": "replace-one"}


def n_features(task_name: str, layout: features.FeatureLayout | None = None) -> int:
    """The model's input width: the hotspot task's, or the outcome task's under `layout`."""
    return len(hotspot.feature_names()) if task_name == "hotspot" else (layout or features.POLICE_UK).width


def build_split(task: dict[str, Any], records: pd.DataFrame, areas: pd.DataFrame | None) -> Split:
    if task["name"] == "hotspot":
        if areas is None:
            raise ValueError("the hotspot task needs the public areas table (data.areas)")
        period = tuple(task["period"]) if task.get("period") else None
        return build_hotspot_split(records, areas, task["test_from"], share=float(task.get("hotspot_share", 0.05)), period=period)
    return build_outcome_split(records, areas, task["positive"], task["test_from"], features.FeatureLayout.from_dict(task.get("features")))


def score(split: Split, proba: np.ndarray, intensity: pd.DataFrame | None = None) -> dict[str, Any]:
    """Every metric of the task (hotspot: hit rate, PAI, PEI with ground truth, plus AUC...)."""
    if isinstance(split, HotspotSplit):
        return hotspot_metrics(split, proba, intensity)
    return binary_metrics(split.y_test, proba)


def read_intensity(ground_truth: Path | None) -> pd.DataFrame | None:
    """The synthetic generator's true expected incident counts per area-month (hotspot's PEI)."""
    if ground_truth is None or not (ground_truth / "intensity.csv.gz").is_file():
        return None
    return pd.read_csv(ground_truth / "intensity.csv.gz")


def hotspot_ceiling(split: HotspotSplit, intensity: pd.DataFrame) -> dict[str, Any]:
    """Flags by the true intensity: the best PAI achievable in expectation."""
    return hotspot_metrics(split, oracle_scores(split, intensity), intensity)
