"""The agency's ClientApp handlers, called directly with Flower messages: it trains on its own
partition, reports cumulative ε, records the spend before replying, and refuses an update
that would exceed its budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from clients.agency import read_spec
from clients.app import REFUSED, evaluate, train
from federation.contract import EPSILON_SPENT_TO_DATE, EPSILON_THIS_RUN
from privacy.accounting import epsilon
from privacy.ledger import Ledger
from tasks.model import initial_model


@pytest.fixture(autouse=True)
def _flower_task_identity():
    # Messages outside a running Flower app need the run/task identity Flower would set.
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0


def _context(spec_path, partition: int = 0) -> Context:
    return Context(
        run_id=1,
        node_id=partition + 1,
        node_config={"partition-id": partition, "num-partitions": 3},
        state=RecordDict(),
        run_config={"peel-spec": str(spec_path)},
    )


def _message(spec_path, kind: str, server_round: int, dp: bool = True, rounds: int = 2) -> Message:
    spec = json.loads(spec_path.read_text())
    config = ConfigRecord(
        {
            "architecture": "fedavg-dp" if dp else "fedavg",
            "dp": dp,
            "rounds": rounds,
            "local-epochs": 1,
            "batch-size": 64,
            "learning-rate": 0.01,
            "server-round": server_round,
        }
    )
    arrays = ArrayRecord(initial_model(spec["task"]["hidden"], spec["seed"]).state_dict())
    return Message(RecordDict({"arrays": arrays, "config": config}), dst_node_id=1, message_type=kind)


@pytest.fixture
def fresh_spec(tiny_spec, tmp_path):
    """The tiny federation with empty ledgers of its own (ledgers persist across runs)."""
    spec = json.loads(tiny_spec.read_text())
    for agency in spec["agencies"]:
        agency["ledger"] = str(tmp_path / f"{agency['slug']}.sqlite")
    path = tmp_path / "federation.json"
    path.write_text(json.dumps(spec))
    return path


def _new_run(spec_path) -> None:
    """The spec of another run (its own run folder) on the same agencies and ledgers."""
    spec = json.loads(spec_path.read_text())
    spec["run_dir"] = str(spec_path.parent / f"run-{len(list(spec_path.parent.glob('run-*')))}")
    Path(spec["run_dir"]).mkdir()
    spec_path.write_text(json.dumps(spec))
    read_spec.cache_clear()


def _ledger(spec_path, partition: int = 0) -> Ledger:
    agency = json.loads(spec_path.read_text())["agencies"][partition]
    return Ledger.open(agency["ledger"], agency["name"])


def test_dp_rounds_charge_the_ledger_before_replying_then_refuse(fresh_spec):
    context = _context(fresh_spec)
    reported = []
    for server_round in (1, 2):
        reply = train(_message(fresh_spec, "train", server_round), context)
        assert not reply.has_error()
        metrics = reply.content["metrics"]
        reported.append(metrics[EPSILON_SPENT_TO_DATE])
        # The spend is in the agency's ledger on disk by the time the reply exists: its record
        # count (released once, Gaussian) and one DP-SGD release per round.
        with _ledger(fresh_spec) as ledger:
            history = ledger.history()
        assert len(history) == 1 + server_round
        assert history[0] == (50.0, 1.0, 1)
        assert metrics[EPSILON_SPENT_TO_DATE] == pytest.approx(epsilon(history, metrics["delta"], "pld"))
        assert metrics[EPSILON_THIS_RUN] == metrics[EPSILON_SPENT_TO_DATE]  # a fresh agency: all of it is this run's
        assert reply.content["agency"]["name"]
        # Nothing of the training itself leaves a DP agency: no loss, batch size or time.
        assert not {"train-loss", "mean-batch", "train-seconds"} & set(metrics)
    assert reported[0] < reported[1] <= 2.0
    # A third round was never planned: the agency refuses instead of overspending.
    refused = train(_message(fresh_spec, "train", 3), context)
    assert refused.has_error()
    assert refused.error.code == REFUSED
    assert "budget exhausted" in refused.error.reason
    with _ledger(fresh_spec) as ledger:
        assert len(ledger.history()) == 3


def test_a_dp_agency_sends_its_released_count_not_its_exact_one(fresh_spec):
    """Two runs on the same records re-send the same released count (charged once); it is the
    weight, and the sampling rate is batch ÷ that count."""
    # Each run plans 4 rounds and sends one: plenty of budget is left for the second.
    first = train(_message(fresh_spec, "train", 1, rounds=4), _context(fresh_spec)).content["metrics"]
    _new_run(fresh_spec)
    second = train(_message(fresh_spec, "train", 1, rounds=4), _context(fresh_spec)).content["metrics"]
    assert first["num-examples"] == second["num-examples"]
    assert first["sample-rate"] == pytest.approx(64 / first["num-examples"])
    with _ledger(fresh_spec) as ledger:
        counts = [r for r in ledger.rows() if r["architecture"] == "record-count"]
    assert len(counts) == 1


def test_a_second_run_starts_from_the_spend_in_the_ledger(fresh_spec):
    first = train(_message(fresh_spec, "train", 1, rounds=1), _context(fresh_spec))
    with _ledger(fresh_spec) as ledger:
        spent = ledger.spent(1e-5, "pld")
    assert 1.9 < spent <= 2.0
    assert first.content["metrics"][EPSILON_SPENT_TO_DATE] == pytest.approx(spent)
    # A new run (another run folder, fresh Flower state) on the same agency folder only has
    # what is left: far more noise, and the ledger's total stays within the budget. With the
    # default cap on σ the agency refuses instead of sending noise (how much is left depends on
    # how close calibration came to the budget); lift the cap to see the noisy release itself.
    _new_run(fresh_spec)
    capped = train(_message(fresh_spec, "train", 1, rounds=1), _context(fresh_spec))
    assert capped.has_error() or capped.content["metrics"]["sigma"] <= 30
    if capped.has_error():
        assert "above this agency's cap 30" in capped.error.reason or "exhausted" in capped.error.reason
    spec = json.loads(fresh_spec.read_text())
    spec["agencies"][0]["policy"]["max_noise_multiplier"] = 1000.0
    fresh_spec.write_text(json.dumps(spec))
    _new_run(fresh_spec)
    second = train(_message(fresh_spec, "train", 1, rounds=1), _context(fresh_spec))
    assert not second.has_error(), second.error.reason
    assert second.content["metrics"]["sigma"] > 3 * first.content["metrics"]["sigma"]
    assert second.content["metrics"][EPSILON_SPENT_TO_DATE] > second.content["metrics"][EPSILON_THIS_RUN]
    released = 1 + 1 + (not capped.has_error()) + 1  # count, first run, capped run if it sent, second
    with _ledger(fresh_spec) as ledger:
        assert len(ledger.history()) == released
        assert ledger.spent(1e-5, "pld") <= 2.0 * (1 + 1e-6)
    # With a smaller budget the agency refuses outright, and charges nothing.
    spec = json.loads(fresh_spec.read_text())
    spec["agencies"][0]["policy"]["budget"] = 1.0
    fresh_spec.write_text(json.dumps(spec))
    _new_run(fresh_spec)
    refused = train(_message(fresh_spec, "train", 1, rounds=1), _context(fresh_spec))
    assert refused.has_error() and refused.error.code == REFUSED
    assert "exhausted" in refused.error.reason and spec["agencies"][0]["name"] in refused.error.reason
    with _ledger(fresh_spec) as ledger:
        assert len(ledger.history()) == released


def test_plain_training_reports_no_epsilon_and_evaluate_scores_own_test_split(tiny_spec):
    context = _context(tiny_spec, partition=1)
    reply = train(_message(tiny_spec, "train", 1, dp=False), context)
    metrics = reply.content["metrics"]
    assert "epsilon" not in metrics
    assert metrics["num-examples"] > 0
    scored = evaluate(Message(RecordDict({"arrays": reply.content["arrays"], "config": ConfigRecord({"architecture": "fedavg"})}), dst_node_id=1, message_type="evaluate"), context)
    scores = scored.content["metrics"]
    assert 0.0 <= scores["accuracy"] <= 1.0
    assert scores["num-examples"] > 0


def test_agency_is_found_by_node_config_in_deployment(tiny_spec):
    spec = json.loads(tiny_spec.read_text())
    agency = spec["agencies"][2]
    context = Context(
        run_id=1, node_id=9, node_config={"agency": agency["name"], "data-path": agency["folder"]}, state=RecordDict(), run_config={"peel-spec": str(tiny_spec)}
    )
    reply = train(_message(tiny_spec, "train", 1, dp=False), context)
    assert reply.content["agency"]["name"] == agency["name"]


def test_a_dropped_out_agency_fails_before_training_or_spending(fresh_spec):
    from clients.app import AgencyDropout

    spec = json.loads(fresh_spec.read_text())
    spec["faults"] = {"dropout": 0.5}
    fresh_spec.write_text(json.dumps(spec))
    read_spec.cache_clear()
    context = _context(fresh_spec)
    dropped = answered = 0
    for server_round in range(1, 21):
        try:
            reply = train(_message(fresh_spec, "train", server_round, rounds=20), context)
        except AgencyDropout as exc:
            assert f"round {server_round}" in str(exc)
            dropped += 1
            continue
        assert not reply.has_error()
        answered += 1
    assert 3 <= dropped <= 17 and dropped + answered == 20
    with _ledger(fresh_spec) as ledger:
        assert len(ledger.history()) == 1 + answered  # the count, then a round per answer: a dropped round spent nothing


def test_a_dp_agency_keeps_its_test_metrics_and_says_only_that_it_evaluated(fresh_spec):
    from clients.evaluations import read_evaluations

    context = _context(fresh_spec)
    reply = train(_message(fresh_spec, "train", 1), context)
    config = ConfigRecord({"architecture": "fedavg-dp", "server-round": 1})
    scored = evaluate(Message(RecordDict({"arrays": reply.content["arrays"], "config": config}), dst_node_id=1, message_type="evaluate"), context)
    assert dict(scored.content["metrics"]) == {"evaluated-locally": 1}
    spec = json.loads(fresh_spec.read_text())
    kept = read_evaluations(Path(spec["agencies"][0]["ledger"]), Path(spec["run_dir"]).name, "fedavg-dp")
    assert len(kept) == 1 and 0.0 <= kept[0]["accuracy"] <= 1.0 and kept[0]["round"] == 1


def test_two_deliveries_of_one_round_send_one_release(fresh_spec):
    """Two concurrent deliveries of the same round: the second waits for the first and re-sends
    its very bytes; one charge, one update."""
    from concurrent.futures import ThreadPoolExecutor

    context = _context(fresh_spec)
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: train(_message(fresh_spec, "train", 1), context), range(2)))
    a, b = (r.content["arrays"] for r in replies)
    assert all(a[k].data == b[k].data for k in a)
    with _ledger(fresh_spec) as ledger:
        assert len(ledger.history()) == 2  # the count and one round


def test_a_deployed_agency_owns_its_policy_and_refuses_what_is_outside_it(tiny_spec, tmp_path):
    """Node config (the agency's operator) wins over the spec: its budget and δ are used, and
    with allow-plain=false it refuses a plain architecture, saying why."""
    spec = json.loads(tiny_spec.read_text())
    agency = spec["agencies"][2]
    node = {"agency": agency["name"], "data-path": agency["folder"], "ledger-path": str(tmp_path / "own.sqlite"), "budget": "0.5", "delta": "1e-6", "allow-plain": "false"}
    context = Context(run_id=1, node_id=9, node_config=node, state=RecordDict(), run_config={"peel-spec": str(tiny_spec)})
    reply = train(_message(tiny_spec, "train", 1, rounds=1), context)
    metrics = reply.content["metrics"]
    assert metrics["epsilon-budget"] == 0.5 and metrics["delta"] == 1e-6
    assert metrics["epsilon-spent-to-date"] <= 0.5 * (1 + 1e-6)
    refused = train(_message(tiny_spec, "train", 1, dp=False), context)
    assert refused.has_error() and "allow-plain=false" in refused.error.reason


def test_an_unknown_architecture_is_refused_before_anything_is_written(fresh_spec):
    """The architecture a coordinator names also names files beside the agency's ledger: one it
    does not know (here a path) is refused, and nothing is charged or written there."""
    message = _message(fresh_spec, "train", 1)
    message.content["config"]["architecture"] = "../../elsewhere"
    folder = Path(json.loads(fresh_spec.read_text())["agencies"][0]["ledger"]).parent
    before = sorted(p.name for p in folder.iterdir())
    reply = train(message, _context(fresh_spec))
    assert reply.has_error() and "no architecture named" in reply.error.reason
    assert sorted(p.name for p in folder.iterdir()) == before
