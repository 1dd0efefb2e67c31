"""The in-process Flower engine (experiments/engine.py): a toy ServerApp/ClientApp pair over two
FedAvg rounds (node state persists, a ClientApp exception becomes an error reply the strategy
sees, timeouts), and Peel's real apps giving the same model as under Flower's Ray simulation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.common.constant import ErrorCode
from flwr.server import ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity

from experiments.engine import InProcessGrid, run_in_process, wire_copy
from tasks.model import initial_model

N_NODES = 3

# ---------------------------------------------------------------- a toy pair (importable)

toy_client = ClientApp()


def _arrays(w: np.ndarray) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.asarray(w, dtype=np.float32))})


@toy_client.train()
def toy_train(msg: Message, context: Context) -> Message:
    """w ← w + (partition + 1); weight partition + 1; counts the rounds it has seen in its state."""
    partition = int(context.node_config["partition-id"])
    if bool(msg.content["config"].get("fail", False)) and partition == 0:
        raise RuntimeError("partition 0 cannot train")
    seen = int(context.state["seen"]["n"]) + 1 if "seen" in context.state else 1
    context.state["seen"] = ConfigRecord({"n": seen})
    w = msg.content["arrays"]["w"].numpy() + (partition + 1)
    metrics = MetricRecord({"num-examples": partition + 1, "rounds-seen": seen, "partition": partition})
    return Message(RecordDict({"arrays": _arrays(w), "metrics": metrics}), reply_to=msg)


@toy_client.evaluate()
def toy_evaluate(msg: Message, context: Context) -> Message:
    w = float(msg.content["arrays"]["w"].numpy().mean())
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": 1, "w": w})}), reply_to=msg)


class Watching(FedAvg):
    """FedAvg that keeps every train reply it was given."""

    def __init__(self, seen: list[list[Message]]) -> None:
        super().__init__(min_available_nodes=N_NODES, min_train_nodes=N_NODES, min_evaluate_nodes=N_NODES)
        self.seen = seen

    def aggregate_train(self, server_round: int, replies):  # noqa: ANN001
        replies = list(replies)
        self.seen.append(replies)
        return super().aggregate_train(server_round, replies)


OUTCOME: dict = {}
toy_server = ServerApp()


@toy_server.main()
def toy_main(grid: Grid, context: Context) -> None:
    replies: list[list[Message]] = []
    train_config = ConfigRecord({"fail": bool(context.run_config.get("fail", False))})
    result = Watching(replies).start(grid=grid, initial_arrays=_arrays(np.zeros(2, dtype=np.float32)), num_rounds=2, train_config=train_config)
    OUTCOME.update(final=result.arrays["w"].numpy(), replies=replies, evaluate=result.evaluate_metrics_clientapp)


@pytest.fixture(autouse=True)
def _fresh_outcome():
    OUTCOME.clear()


# ---------------------------------------------------------------- the toy pair


def test_two_fedavg_rounds_aggregate_weighted_and_state_persists():
    grid = run_in_process(toy_server, toy_client, N_NODES)
    # Round r: every node sends w + p + 1 with weight p + 1, so w grows by Σ(p+1)² / Σ(p+1) = 14/6.
    np.testing.assert_allclose(OUTCOME["final"], np.full(2, 2 * 14 / 6), rtol=1e-6)
    for server_round, replies in enumerate(OUTCOME["replies"], start=1):
        assert len(replies) == N_NODES
        assert sorted(int(r.content["metrics"]["partition"]) for r in replies) == [0, 1, 2]
        assert all(int(r.content["metrics"]["rounds-seen"]) == server_round for r in replies)
    # Replies carry Flower's metadata: from the node that was asked, to the SuperLink, in reply to it.
    last = OUTCOME["replies"][-1]
    assert {r.metadata.src_node_id for r in last} == set(grid.get_node_ids())
    assert all(r.metadata.dst_node_id == 1 and r.metadata.reply_to_message_id and r.metadata.message_type == MessageType.TRAIN for r in last)
    assert len({r.metadata.reply_to_message_id for r in last}) == N_NODES
    assert {int(ctx.state["seen"]["n"]) for ctx in grid.contexts.values()} == {2}
    assert {ctx.node_config["partition-id"] for ctx in grid.contexts.values()} == {0, 1, 2}
    assert all(ctx.node_config["num-partitions"] == N_NODES for ctx in grid.contexts.values())
    assert OUTCOME["evaluate"][2]["w"] == pytest.approx(2 * 14 / 6, rel=1e-6)
    # Flower's wire format: bytes counted both ways, and a client never holds the server's objects.
    assert grid.run.bytes_sent > 0 and grid.run.bytes_recv > 0


def test_clientapp_exception_becomes_an_error_reply_the_strategy_sees(caplog):
    grid = run_in_process(toy_server, toy_client, N_NODES, {"fail": True})
    failing = next(n for n, ctx in grid.contexts.items() if ctx.node_config["partition-id"] == 0)
    for replies in OUTCOME["replies"]:
        errors = [r for r in replies if r.has_error()]
        assert len(replies) == N_NODES and len(errors) == 1
        assert errors[0].metadata.src_node_id == failing
        assert errors[0].error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
        assert "partition 0 cannot train" in errors[0].error.reason
    # The run went on and aggregated the other two: w grows by (2² + 3²) / (2 + 3) per round.
    np.testing.assert_allclose(OUTCOME["final"], np.full(2, 2 * 13 / 5), rtol=1e-6)
    assert "raised" in caplog.text


def test_run_config_reaches_server_and_every_node():
    grid = run_in_process(toy_server, toy_client, N_NODES, {"fail": False, "name": "x"})
    assert all(ctx.run_config == {"fail": False, "name": "x"} for ctx in grid.contexts.values())


def test_push_then_pull_and_timeouts(monkeypatch):
    grid = InProcessGrid(toy_client, 2)
    # What run_in_process sets for a ServerApp: messages take their run and source from it.
    for attr, value in (("_run_id", grid.run.run_id), ("_task_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)
    nodes = grid.get_node_ids()

    def evaluate(node: int) -> Message:
        return Message(RecordDict({"arrays": _arrays(np.ones(2, dtype=np.float32))}), dst_node_id=node, message_type=MessageType.EVALUATE)

    ids = list(grid.push_messages([evaluate(n) for n in nodes]))
    assert len(ids) == 2
    replies = list(grid.pull_messages(ids))
    assert sorted(r.metadata.reply_to_message_id for r in replies) == sorted(ids)
    assert list(grid.pull_messages(ids)) == []  # each reply is returned once
    # A message to an unknown node is not sent (Flower's LinkState drops it), so it gets no reply.
    assert list(grid.push_messages([evaluate(12345)])) == []
    # timeout=0: nothing is delivered in time, nothing comes back, no node runs anything.
    assert list(grid.send_and_receive([evaluate(n) for n in nodes], timeout=0)) == []
    assert len(list(grid.send_and_receive([evaluate(n) for n in nodes], timeout=60))) == 2


def test_before_handover_runs_before_messages_cross(monkeypatch):
    """The hook Peel's audit trail syncs in runs as the ServerApp's messages leave it and before
    any reply is handed to it: every reply it receives was produced before the last hook call."""
    events: list[str] = []
    grid = InProcessGrid(toy_client, 2, before_handover=lambda: events.append("handover"))
    for attr, value in (("_run_id", grid.run.run_id), ("_task_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)
    real = grid.client_app
    monkeypatch.setattr(grid, "client_app", lambda message, context: events.append("client") or real(message=message, context=context))
    msgs = [Message(RecordDict({"arrays": _arrays(np.ones(2, dtype=np.float32))}), dst_node_id=n, message_type=MessageType.EVALUATE) for n in grid.get_node_ids()]
    assert len(grid.send_and_receive(msgs)) == 2
    assert events == ["handover", "client", "client", "handover"]


def test_wire_copy_is_an_equal_message_sharing_nothing(monkeypatch):
    for attr, value in (("_run_id", 7), ("_task_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)
    content = RecordDict({"arrays": _arrays(np.arange(3)), "config": ConfigRecord({"lr": 0.1, "name": "x"})})
    msg = Message(content, dst_node_id=42, message_type=MessageType.TRAIN, group_id="3")
    msg.metadata.__dict__["_message_id"] = "abc"
    copy, size = wire_copy(msg)
    assert copy.metadata == msg.metadata and size > 3 * 4
    assert copy.content["arrays"]["w"].numpy().tolist() == [0.0, 1.0, 2.0]
    assert copy.content["config"] == msg.content["config"]
    assert copy.content is not msg.content and copy.content["arrays"]["w"] is not msg.content["arrays"]["w"]


def test_invalid_reply_becomes_an_error_reply(monkeypatch):
    broken = ClientApp()

    @broken.query()
    def no_reply(msg: Message, context: Context) -> None:  # forgets to return its reply
        return None

    grid = InProcessGrid(broken, 1)
    for attr, value in (("_run_id", grid.run.run_id), ("_task_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)
    (reply,) = grid.send_and_receive([Message(RecordDict(), dst_node_id=grid.get_node_ids()[0], message_type=MessageType.QUERY)])
    assert reply.has_error() and reply.error.code == ErrorCode.UNKNOWN
    assert "expected a Message, got NoneType" in reply.error.reason


# The legacy API (NumPyClient, ServerApp(server_fn=...)): its Server calls the grid from a pool
# of threads, one message each.
LEGACY_SEEN: list[float] = []


class LegacyClient(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        return [parameters[0] + self.partition + 1], self.partition + 1, {}

    def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
        LEGACY_SEEN.append(float(parameters[0].mean()))
        return 0.0, 1, {}


legacy_client = ClientApp(client_fn=lambda context: LegacyClient(int(context.node_config["partition-id"])).to_client())


def _legacy_components(context: Context) -> ServerAppComponents:
    strategy = LegacyFedAvg(min_available_clients=N_NODES, min_fit_clients=N_NODES, initial_parameters=ndarrays_to_parameters([np.zeros(2)]))
    return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=2))


legacy_server = ServerApp(server_fn=_legacy_components)


def test_legacy_server_and_numpy_clients():
    LEGACY_SEEN.clear()
    run_in_process(legacy_server, legacy_client, N_NODES)
    assert LEGACY_SEEN == pytest.approx([14 / 6] * N_NODES + [2 * 14 / 6] * N_NODES)


# ---------------------------------------------------------------- Peel's own apps


def _spec_copy(tiny_spec: Path, run_dir: Path, federated: list[str]) -> Path:
    spec = json.loads(tiny_spec.read_text())
    spec["run_dir"], spec["federated"] = str(run_dir), federated
    for agency in spec["agencies"]:  # ledgers persist across runs: each run gets its own
        agency["ledger"] = str(run_dir / f"{agency['slug']}.sqlite")
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "federation.json"
    path.write_text(json.dumps(spec))
    return path


def _in_process(spec_path: Path) -> InProcessGrid:
    from clients.app import app as client_app
    from server.app import app as server_app

    saved = os.environ.get("PEEL_SPEC")
    os.environ["PEEL_SPEC"] = str(spec_path)
    try:
        return run_in_process(server_app, client_app, len(json.loads(spec_path.read_text())["agencies"]))
    finally:
        if saved is None:
            os.environ.pop("PEEL_SPEC", None)
        else:
            os.environ["PEEL_SPEC"] = saved


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_peel_apps_run_fedavg_and_secagg_in_process(tiny_spec, tmp_path):
    """Peel's coordinator and agencies, plain FedAvg and the legacy SecAgg+ workflow (with its
    client mod), run through the in-process grid with a row per agency and round."""
    spec_path = _spec_copy(tiny_spec, tmp_path / "run", ["fedavg", "fedavg-dp-secagg"])
    _in_process(spec_path)
    rows = _rows(tmp_path / "run")
    names = {a["name"] for a in json.loads(spec_path.read_text())["agencies"]}
    for arch in ("fedavg", "fedavg-dp-secagg"):
        for server_round in (1, 2):
            got = [r for r in rows if r["architecture"] == arch and r["round"] == server_round]
            assert {r["agency"] for r in got} == names, (arch, server_round)
            assert not any("train_error" in r or "evaluate_error" in r for r in got), got
        assert (tmp_path / "run" / "models" / f"{arch}.pt").is_file()
    assert all(r["epsilon_spent_to_date"] > 0 for r in rows if r["architecture"] == "fedavg-dp-secagg")


@pytest.mark.slow
def test_same_fedavg_model_as_flower_ray_simulation(tiny_spec, tmp_path):
    """Plain training is seeded by (seed, agency, architecture, round): both engines must give
    the same global model (up to float summation order)."""
    from experiments.simulation import run_federated

    ray_spec = _spec_copy(tiny_spec, tmp_path / "ray", ["fedavg"])
    ours_spec = _spec_copy(tiny_spec, tmp_path / "ours", ["fedavg"])
    run_federated(ray_spec, len(json.loads(ray_spec.read_text())["agencies"]))
    _in_process(ours_spec)
    ray_model = torch.load(tmp_path / "ray" / "models" / "fedavg.pt")
    ours = torch.load(tmp_path / "ours" / "models" / "fedavg.pt")
    assert ray_model.keys() == ours.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], ray_model[key], rtol=1e-5, atol=1e-6)
    # ...and the models moved away from the start: this is not a comparison of two initial models.
    spec = json.loads(ours_spec.read_text())
    start = initial_model(spec["task"]["hidden"], spec["seed"]).state_dict()
    assert max(float((ours[k] - start[k]).abs().max()) for k in ours) > 1e-3
    # The same per-agency rows (metrics) from both engines.
    key = lambda r: (r["round"], r["agency"])  # noqa: E731
    ray_rows, our_rows = sorted(_rows(tmp_path / "ray"), key=key), sorted(_rows(tmp_path / "ours"), key=key)
    assert [key(r) for r in ray_rows] == [key(r) for r in our_rows]
    for a, b in zip(ray_rows, our_rows, strict=True):
        assert a["auc"] == pytest.approx(b["auc"], abs=1e-5)
