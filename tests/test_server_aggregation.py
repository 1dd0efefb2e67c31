"""Per-round metrics combine as Peel reports them: ε is the max over agencies (never an
average), counts are sums, the rest example-weighted means."""

import math

from flwr.app import MetricRecord, RecordDict

from server.aggregation import aggregate_metrics


def _reply(**metrics):
    return RecordDict({"metrics": MetricRecord(metrics)})


def test_epsilon_is_max_counts_sum_losses_weighted():
    replies = [
        _reply(**{"num-examples": 100, "epsilon-spent-to-date": 0.9, "epsilon-this-run": 0.5, "train-loss": 1.0, "steps": 4}),
        _reply(**{"num-examples": 300, "epsilon-spent-to-date": 0.4, "epsilon-this-run": 0.4, "train-loss": 2.0, "steps": 1}),
    ]
    out = aggregate_metrics(replies, "num-examples")
    assert out["epsilon-spent-to-date"] == 0.9 and out["epsilon-this-run"] == 0.5
    assert out["num-examples"] == 400
    assert out["steps"] == 5
    assert out["train-loss"] == 1.75


def test_undefined_values_are_skipped_not_averaged_in():
    replies = [_reply(**{"num-examples": 10, "auc": float("nan")}), _reply(**{"num-examples": 30, "auc": 0.7})]
    assert aggregate_metrics(replies, "num-examples")["auc"] == 0.7
    only_nan = aggregate_metrics([_reply(**{"num-examples": 10, "auc": float("nan")})], "num-examples")
    assert math.isnan(only_nan["auc"])
