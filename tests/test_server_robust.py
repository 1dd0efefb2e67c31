"""federation.aggregator: each name reaches Flower's strategy class (with its parameters), keeps
Peel's per-agency recording, and a robust aggregator shrugs off one scaled update that drags
FedAvg's weighted mean away."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, FedMedian, FedTrimmedAvg, Krum
from flwr.supercore.task_identity import TaskIdentity

from federation.spec import FederationSpec
from server.recorder import RoundRecorder
from server.robust import aggregator_of, recording_strategy
from server.strategy import Recording

AGENCIES = ["A", "B", "C", "D", "E"]
FED = FederationSpec(rounds=2, local_epochs=1, batch_size=64, learning_rate=0.01, round_timeout=60.0)


@pytest.fixture(autouse=True)
def _flower_task_identity():
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0


def _strategy(tmp_path, **fed):
    recorder = RoundRecorder(tmp_path / "metrics.jsonl", "fedavg", AGENCIES)
    return recording_strategy(recorder, dataclasses.replace(FED, **fed), len(AGENCIES)), recorder


@pytest.mark.parametrize(("name", "cls"), [("fedavg", FedAvg), ("median", FedMedian), ("trimmed_mean", FedTrimmedAvg), ("krum", Krum)])
def test_each_aggregator_reaches_flowers_class(tmp_path, name, cls):
    strategy, _ = _strategy(tmp_path, aggregator=name)
    assert isinstance(strategy, cls) and isinstance(strategy, Recording)
    assert strategy.min_train_nodes == len(AGENCIES)


def test_parameters_reach_flower(tmp_path):
    assert _strategy(tmp_path, aggregator="trimmed_mean", trimmed_beta=0.3)[0].beta == 0.3
    assert _strategy(tmp_path, aggregator="krum", krum_malicious=1)[0].num_malicious_nodes == 1


def test_krum_needs_enough_agencies_and_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="at least 7 agencies"):
        _strategy(tmp_path, aggregator="krum", krum_malicious=2)
    with pytest.raises(ValueError, match="unknown aggregator"):
        _strategy(tmp_path, aggregator="mean-ish")


def test_only_fedavg_and_fedavg_dp_honour_the_aggregator():
    fed = dataclasses.replace(FED, aggregator="median")
    assert [aggregator_of(a, fed) for a in ("fedavg", "fedavg-dp", "fedavg-dp-secagg", "fedavg-central-dp")] == ["median", "median", "fedavg", "clipped_mean"]


def _reply(node: int, agency: str, value: float, n_train: int, epsilon: float) -> Message:
    instruction = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type="train")
    arrays = ArrayRecord({"w": Array(np.full(3, value, dtype=np.float32))})
    metrics = MetricRecord({"num-examples": n_train, "epsilon-spent-to-date": epsilon})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics, "agency": ConfigRecord({"name": agency})}), reply_to=instruction)


def _round(tmp_path, aggregator: str) -> tuple[np.ndarray, MetricRecord, RoundRecorder]:
    """Global model at 0; four honest agencies moved it to about 1, the largest (E) sends its
    update of 1 scaled ×10."""
    strategy, recorder = _strategy(tmp_path, aggregator=aggregator)
    honest = [0.9, 1.0, 1.1, 1.05]
    replies = [_reply(i + 1, a, v, 100, 0.5 + i / 10) for i, (a, v) in enumerate(zip(AGENCIES[:4], honest, strict=True))]
    replies.append(_reply(5, "E", 10.0, 400, 0.1))
    arrays, metrics = strategy.aggregate_train(1, replies)
    return arrays["w"].numpy(), metrics, recorder


def test_fedavg_is_dragged_by_a_scaled_update(tmp_path):
    w, _, _ = _round(tmp_path, "fedavg")
    np.testing.assert_allclose(w, (0.9 + 1.0 + 1.1 + 1.05) * 100 / 800 + 10.0 * 400 / 800, rtol=1e-6)


@pytest.mark.parametrize("aggregator", ["median", "trimmed_mean", "krum"])
def test_robust_aggregators_resist_it(tmp_path, aggregator):
    w, metrics, _ = _round(tmp_path, aggregator)
    assert np.all((w >= 0.9) & (w <= 1.1))
    # ε is a worst case over every agency that answered, also when Krum kept only one update.
    assert metrics["epsilon-spent-to-date"] == pytest.approx(0.8)
    assert metrics["num-examples"] == 800
