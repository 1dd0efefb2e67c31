"""Scoring a run folder: every architecture's final models on every agency's test rows, the
ground-truth ceiling (synthetic data) and fairness across agencies and deprivation quintiles."""

from __future__ import annotations

import numpy as np

from experiments.results import append_rows, metric_values
from experiments.run_folder import RunFolder, Splits, model_of
from federation import architectures
from policedata.ground_truth import outcome_probability
from tasks import registry
from tasks.fairness import deprivation_quintiles, flag_disparity, flag_shares_by_quintile, utility_spread
from tasks.hotspot import HotspotSplit
from tasks.hotspot_metrics import flag_weights, intensity_for_test
from tasks.metrics import binary_metrics, weighted_mean
from tasks.train import predict_proba


def _test_weights(splits: Splits) -> dict[str, int]:
    return {name: len(split.y_test) for name, split in splits.items()}


def _overall(per_agency_metrics: dict[str, dict], splits: Splits) -> dict:
    return metric_values(weighted_mean(per_agency_metrics, _test_weights(splits)))


def ceiling(folder: RunFolder) -> dict | None:
    """The ground-truth ceiling (synthetic data only), scored on the same test rows: the true
    outcome probabilities (Bayes-optimal), or hotspot flags by the true intensity."""
    federation, splits = folder.federation, folder.splits
    if federation.ground_truth is None:
        return None
    intensity = folder.intensity
    per_agency = {}
    for agency in federation.agencies:
        split = splits[agency["name"]]
        if isinstance(split, HotspotSplit):
            per_agency[agency["name"]] = metric_values(registry.hotspot_ceiling(split, intensity))
        else:
            p = outcome_probability(federation.ground_truth, agency["slug"], split.test_crime_ids.tolist(), split.test_crime_types.tolist(), folder.config.task.positive)
            per_agency[agency["name"]] = metric_values(binary_metrics(split.y_test, p))
    return {"metrics": _overall(per_agency, splits), "per_agency": per_agency}


def score(folder: RunFolder) -> None:
    """Score every architecture's final models on every agency's test rows, in one place and
    the same way for all (the evaluation harness sees everything; the agencies never do)."""
    splits, task = folder.splits, folder.config.task
    headline = registry.HEADLINE[task.name]
    for arch, entry in folder.results.items():
        models = folder.models[arch]
        probas = {name: predict_proba(model_of(models, name), split.X_test) for name, split in splits.items()}
        for name, split in splits.items():
            entry["per_agency"][name]["metrics"] = metric_values(registry.score(split, probas[name], folder.intensity))
            if isinstance(split, HotspotSplit):
                entry["per_agency"][name]["record_influence"] = split.record_influence
        entry["metrics"] = _overall({n: a["metrics"] for n, a in entry["per_agency"].items()}, splits)
        entry["fairness"] = _fairness(folder, entry, probas, headline)
        if not architectures.is_federated(arch):  # the federated ones' rows come from the coordinator
            rounds = folder.config.federation.rounds
            append_rows(folder.run_dir / "metrics.jsonl", ({"architecture": arch, "round": rounds, "agency": n, **a["metrics"], "n_train": a["n_train"], "n_test": a["n_test"]} for n, a in entry["per_agency"].items()))


def _fairness(folder: RunFolder, entry: dict, probas: dict, headline: str) -> dict:
    """Utility spread across agencies; for hotspot flags, shares per deprivation quintile."""
    splits = folder.splits
    out: dict = {"metric": headline, "utility_spread": utility_spread({n: a["metrics"] for n, a in entry["per_agency"].items()}, {n: len(s.y_train) for n, s in splits.items()}, headline)}
    if folder.config.task.name == "hotspot" and folder.federation.areas is not None:
        edges = deprivation_quintiles(folder.areas)
        hotspot_splits = [(name, s) for name, s in splits.items() if isinstance(s, HotspotSplit)]
        flags = np.concatenate([flag_weights(s, probas[n]) for n, s in hotspot_splits])
        deprivation = np.concatenate([s.test_deprivation for _, s in hotspot_splits])
        recorded = np.concatenate([s.test_next_counts for _, s in hotspot_splits])
        true = np.concatenate([intensity_for_test(s, folder.intensity) for _, s in hotspot_splits]) if folder.intensity is not None else None
        rows = flag_shares_by_quintile(flags, deprivation, true, recorded, edges)
        out["quintiles"] = rows
        out["disparity"] = flag_disparity(rows)
    return out
