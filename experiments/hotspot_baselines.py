"""summary.json's ``hotspot_baselines``: every architecture's final models next to the analysts'
baselines (naive counts, KDE, ProMap-style, the oracle on synthetic data) at 1%, 5% and 10% of
areas, with block-bootstrap intervals over test months (``tasks.hotspot_baselines``)."""

from __future__ import annotations

from typing import Any

from experiments.run_folder import RunFolder, model_of
from tasks.hotspot import HotspotSplit
from tasks.hotspot_baselines import evaluate_baselines
from tasks.train import predict_proba


def hotspot_baselines(folder: RunFolder) -> dict[str, Any] | None:
    """The models and baselines of a hotspot run folder whose architectures have run (None for
    another task). Computed by the evaluation harness, which holds every agency's records."""
    if folder.config.task.name != "hotspot" or folder.federation.areas is None:
        return None
    splits = {name: split for name, split in folder.splits.items() if isinstance(split, HotspotSplit)}
    models = {arch: {name: predict_proba(model_of(folder.models[arch], name), split.X_test) for name, split in splits.items()} for arch in folder.config.architectures if arch in folder.models}
    return evaluate_baselines(splits, folder.areas, folder.intensity, models, seed=folder.config.seed).as_dict()
