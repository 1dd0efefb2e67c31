"""fedavg-dp-secagg: Flower's legacy SecAgg+ run from Peel's Message-API ServerApp code against
Peel's real ClientApp, in process (a Grid that delivers every message to the agencies' ClientApp
directly). The coordinator never holds an individual agency's update: what its strategy receives
is one unmasked weighted mean, what each agency sends is masked, and an agency that refuses
drops out without stopping the others' sum."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest
from conftest import TINY
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
from flwr.common import bytes_to_ndarray, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE, Key, Stage
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

import clients.app as client_app_module
import clients.secagg as client_secagg
import server.secagg as server_secagg
from clients.agency import Agency
from clients.app import app as client_app
from experiments.config import validate
from experiments.prepare import materialise, write_spec
from privacy.accounting import epsilon
from privacy.budget import ReleaseRefused
from server.recorder import RoundRecorder
from tasks.model import initial_model


@pytest.fixture(autouse=True)
def _flower_task_identity():
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0


class LocalGrid(Grid):
    """Delivers every message straight to the ClientApp of its node (one Context per node, kept
    across messages as Flower keeps `context.state`), copying contents as a network would, and
    keeps every (message, reply) pair."""

    def __init__(self, spec_path: Path, n_nodes: int) -> None:
        self.contexts = {
            node: Context(run_id=1, node_id=node, node_config={"partition-id": node - 1, "num-partitions": n_nodes}, state=RecordDict(), run_config={"peel-spec": str(spec_path)})
            for node in range(1, n_nodes + 1)
        }
        self.log: list[tuple[Message, Message]] = []

    def set_run(self, run: Run) -> None:  # pragma: no cover - not used in process
        pass

    @property
    def run(self) -> Run:
        return Run.create_empty(run_id=1)

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:  # noqa: ANN001
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def push_messages(self, messages):  # noqa: ANN001, ANN201
        raise NotImplementedError

    def pull_messages(self, message_ids):  # noqa: ANN001, ANN201
        raise NotImplementedError

    def send_and_receive(self, messages, *, timeout=None) -> list[Message]:  # noqa: ANN001
        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = str(uuid4())
            delivered = Message(copy.deepcopy(msg.content), dst_node_id=msg.metadata.dst_node_id, message_type=msg.metadata.message_type, group_id=msg.metadata.group_id)
            delivered.metadata.__dict__["_message_id"] = msg.metadata.message_id
            try:
                reply = client_app(delivered, self.contexts[msg.metadata.dst_node_id])
            except Exception as exc:  # what Flower's runtime turns a raising ClientApp into
                reply = Message(Error(0, str(exc)), reply_to=delivered)
            reply = Message(copy.deepcopy(reply.content), reply_to=msg) if reply.has_content() else Message(reply.error, reply_to=msg)
            self.log.append((msg, reply))
            replies.append(reply)
        return replies


def _train_config(rounds: int) -> dict:
    return {"architecture": "fedavg-dp-secagg", "dp": True, "rounds": rounds, "local-epochs": 1, "batch-size": 64, "learning-rate": 0.01}


@pytest.fixture(scope="module")
def rdp_spec(tmp_path_factory) -> Path:
    """The tiny federation of conftest, with an accountant named (the test recomputes ε; RDP is the quickest)."""
    run_dir = tmp_path_factory.mktemp("secagg-run")
    config = validate({**TINY, "privacy": {**TINY["privacy"], "accountant": "rdp"}}, "tiny")
    return write_spec(config, materialise(config, run_dir / "data"), run_dir)


@pytest.fixture(scope="module")
def secagg_run(rdp_spec):
    """Two SecAgg+ rounds on the tiny federation; in round 2 the first agency refuses (as it does
    when its budget is exhausted). Captures what each agency handed to SecAgg+ (its DP update,
    before masking) and what the coordinator's strategy received."""
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    spec = json.loads(rdp_spec.read_text())
    names = [a["name"] for a in spec["agencies"]]
    grid = LocalGrid(rdp_spec, len(names))
    sent: list[dict] = []  # what each agency handed to SecAgg+, with the round
    received: list[list[list[np.ndarray]]] = []  # per round: the parameters of every result
    legacy_update, aggregate_fit, dp_round = client_secagg.legacy_update, server_secagg.SecAggFedAvg.aggregate_fit, client_app_module._dp_round

    def capture_update(content, global_weights, max_weight, clipping_range):  # noqa: ANN001, ANN202
        update = [t - g for t, g in zip(content["arrays"].to_numpy_ndarrays(), global_weights, strict=True)]
        sent.append({"agency": str(content["agency"]["name"]), "round": len(received) + 1, "update": update, "weight": int(content["metrics"]["num-examples"])})
        return legacy_update(content, global_weights, max_weight, clipping_range)

    def capture_aggregate(self, server_round, results, failures):  # noqa: ANN001, ANN202
        received.append([parameters_to_ndarrays(fitres.parameters) for _, fitres in results])
        return aggregate_fit(self, server_round, results, failures)

    def refuse_round_2(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        given = (*args, *kwargs.values())
        agency = next(a for a in given if isinstance(a, Agency))
        config = next(a for a in given if isinstance(a, ConfigRecord))
        if agency.name == names[0] and int(config["server-round"]) == 2:
            raise ReleaseRefused("privacy budget exhausted (test)")
        return dp_round(*args, **kwargs)

    initial = ArrayRecord(initial_model(spec["task"]["hidden"], spec["seed"]).state_dict())
    recorder = RoundRecorder(rdp_spec.parent / "secagg-metrics.jsonl", "fedavg-dp-secagg", names)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client_secagg, "legacy_update", capture_update)
        mp.setattr(server_secagg.SecAggFedAvg, "aggregate_fit", capture_aggregate)
        mp.setattr(client_app_module, "_dp_round", refuse_round_2)
        final, _ = server_secagg.train_secagg(
            grid,
            Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}),
            architecture="fedavg-dp-secagg",
            initial=initial,
            recorder=recorder,
            n_agencies=len(names),
            train_config=_train_config(2),
            rounds=2,
            timeout=60,
            run_dir=rdp_spec.parent / "secagg-run",
            on_model=lambda server_round, arrays: None,
        )
    rows = [json.loads(line) for line in recorder.metrics_path.read_text().splitlines()]
    return {"grid": grid, "sent": sent, "received": received, "initial": initial, "final": final, "rows": rows, "names": names}


def test_strategy_receives_only_the_weighted_mean_of_the_dp_updates(secagg_run):
    sent, received, names = secagg_run["sent"], secagg_run["received"], secagg_run["names"]
    assert len(received) == 2
    assert [len([u for u in sent if u["round"] == r]) for r in (1, 2)] == [3, 2]  # round 2: one refused
    assert names[0] not in {u["agency"] for u in sent if u["round"] == 2}
    for server_round, results in enumerate(received, start=1):
        updates = [u for u in sent if u["round"] == server_round]
        assert len(results) == len(updates)
        # One already-aggregated vector, the same in every result: nothing per agency.
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                np.testing.assert_array_equal(a, b)
        weights = np.array([u["weight"] for u in updates], dtype=float)
        expected = [sum(w * u["update"][i] for w, u in zip(weights, updates, strict=True)) / weights.sum() for i in range(len(results[0]))]
        for got, want in zip(results[0], expected, strict=True):
            np.testing.assert_allclose(got, want, atol=5e-5)
        # ...and it is no agency's own update (the gap shrinks with an agency's share of the
        # weights: one whose released count dominates has a mean close to its own update).
        for u in updates:
            gap = max(float(np.abs(got - mine).max()) for got, mine in zip(results[0], u["update"], strict=True))
            assert gap > 0, u["agency"]


def test_masked_vectors_sent_to_the_coordinator_are_not_the_updates(secagg_run):
    grid, sent = secagg_run["grid"], secagg_run["sent"]
    stage2 = [
        reply
        for msg, reply in grid.log
        if reply.has_content() and msg.content.config_records.get(RECORD_KEY_CONFIGS, {}).get(Key.STAGE) == Stage.COLLECT_MASKED_VECTORS
    ]
    assert len(stage2) == len(sent)
    max_weight = float(max(u["weight"] for u in sent))
    for reply, mine in zip(stage2, sent, strict=True):
        # The coordinator got no array record from the agency, only masked integers.
        assert not any(len(record) for record in reply.content.array_records.values())
        # SecAgg+'s encoding: [weight factor, weighted update entries quantized to 2^22 levels].
        factor, *masked = [bytes_to_ndarray(b) for b in reply.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]]
        ratio = mine["weight"] / max_weight
        assert int(factor[0]) != round(ratio * 2**22)
        assert len(masked) == len(mine["update"])
        # What the agency's quantized update would be without masks (±1 for stochastic rounding).
        plain = [(np.clip(u * ratio, -8, 8) + 8) * (2**22 / 16) for u in mine["update"]]
        for m, p in zip(masked, plain, strict=True):
            assert np.mean(np.abs(m.reshape(-1).astype(np.float64) - p.reshape(-1)) <= 2) < 0.01
        # The masked entries spread over [0, 2^32), unlike a small update near 2^21.
        flat = np.concatenate([m.reshape(-1) for m in masked]).astype(np.float64)
        assert flat.std() > 2**30


def test_agencies_account_as_in_fedavg_dp_and_rows_reach_the_recorder(secagg_run):
    rows, names = secagg_run["rows"], secagg_run["names"]
    assert {r["agency"] for r in rows} == set(names)
    assert sorted({r["round"] for r in rows}) == [1, 2]
    for name in names:
        mine = sorted((r for r in rows if r["agency"] == name), key=lambda r: r["round"])
        assert [r["round"] for r in mine] == [1, 2]
        # Evaluated every round, the metrics kept in the agency's own folder (a DP agency's test
        # metrics are a release it does not make).
        assert all(r["evaluated_locally"] == 1 and "auc" not in r for r in mine)
        released = [r for r in mine if "epsilon_spent_to_date" in r]
        history = [(50.0, 1.0, 1)] + [(r["sigma"], r["sample_rate"], r["steps"]) for r in released]  # its released count first
        assert released[-1]["epsilon_spent_to_date"] == pytest.approx(epsilon(history, 1e-5, "rdp"))
        assert released[-1]["epsilon_spent_to_date"] <= 2.0  # the tiny spec's budget
    refused = next(r for r in rows if r["agency"] == names[0] and r["round"] == 2)
    assert refused["train_error"].startswith(f"{names[0]}: privacy budget exhausted")
    eps = {r["agency"]: r["epsilon_spent_to_date"] for r in rows if r["round"] == 2 and "epsilon_spent_to_date" in r}
    first = {r["agency"]: r["epsilon_spent_to_date"] for r in rows if r["round"] == 1}
    assert all(eps[n] > first[n] for n in names[1:])  # cumulative


def test_final_model_is_initial_plus_the_two_means(secagg_run):
    initial, final, received = secagg_run["initial"], secagg_run["final"], secagg_run["received"]
    assert list(final.keys()) == list(initial.keys())
    for i, (a, b) in enumerate(zip(initial.to_numpy_ndarrays(), final.to_numpy_ndarrays(), strict=True)):
        np.testing.assert_allclose(b, a + received[0][0][i] + received[1][0][i], atol=1e-5)


def test_two_agencies_are_refused():
    with pytest.raises(ValueError, match="at least 3 agencies"):
        server_secagg.train_secagg(None, None, architecture="fedavg-dp-secagg", initial=ArrayRecord(), recorder=None, n_agencies=2, train_config={}, rounds=1, timeout=1, run_dir=Path("unused"), on_model=print)  # type: ignore[arg-type]


def test_messages_outside_the_protocol_pass_through_the_mod(rdp_spec):
    context = LocalGrid(rdp_spec, 3).contexts[1]
    plain = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=1, message_type="train")
    marker = object()
    assert client_secagg.secagg_mod(plain, context, lambda msg, ctx: marker) is marker


def test_an_agency_above_max_weight_refuses_to_send(rdp_spec):
    context = LocalGrid(rdp_spec, 3).contexts[1]
    context.state.config_records[RECORD_KEY_STATE] = ConfigRecord({"max_weight": 1.0, "clipping_range": 8.0})
    with pytest.raises(client_secagg._NoUpdate, match="max_weight 1 is below its released record count"):
        client_secagg._check_weight(context)
