"""The coordinator's per-round, per-agency rows: metrics under agency names, refusals attributed
to the agency that refused even before it ever answered."""

from __future__ import annotations

import json

import pytest
from flwr.app import ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from server.recorder import RoundRecorder


@pytest.fixture(autouse=True)
def _flower_task_identity():
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0


def _instruction(node: int, kind: str) -> Message:
    return Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type=kind)


def _ok(node: int, kind: str, agency: str, **metrics) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics), "agency": ConfigRecord({"name": agency})})
    return Message(content, reply_to=_instruction(node, kind))


def _error(node: int, kind: str, reason: str) -> Message:
    return Message(Error(4001, reason), reply_to=_instruction(node, kind))


def test_rows_per_agency_with_refusals_attributed(tmp_path):
    path = tmp_path / "metrics.jsonl"
    recorder = RoundRecorder(path, "fedavg-dp", ["North Police", "South Police"])
    recorder.train_replies(
        [
            _ok(1, "train", "North Police", **{"num-examples": 10, "epsilon": 0.5}),
            _error(2, "train", "South Police: privacy budget exhausted: ε spent 1.000"),
        ]
    )
    recorder.evaluate_replies(
        1,
        [
            _ok(1, "evaluate", "North Police", **{"num-examples": 4, "auc": 0.7}),
            _ok(2, "evaluate", "South Police", **{"num-examples": 3, "auc": float("nan")}),
        ],
    )
    rows = {r["agency"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert set(rows) == {"North Police", "South Police"}
    assert rows["North Police"] == {"architecture": "fedavg-dp", "round": 1, "agency": "North Police", "n_train": 10, "epsilon": 0.5, "n_test": 4, "auc": 0.7}
    assert rows["South Police"]["train_error"].startswith("South Police: privacy budget exhausted")
    assert rows["South Police"]["auc"] is None  # NaN is not JSON: undefined metrics are null
