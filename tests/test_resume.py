"""The pieces of crash-and-resume, one at a time (the SIGKILL end-to-end test is
tests/test_end_to_end_resume.py): torn last lines, the coordinator's checkpoint, the round loop
continuing from it, and an agency's kept release."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from clients import releases
from clients.agency import Agency
from experiments.resume import drop_torn_tail
from federation.policy import AgencyPolicy
from privacy.budget import DPPlan
from server import checkpoint
from server.checkpoint import AGGREGATED, EVALUATED, Checkpoint
from server.recorder import RoundRecorder
from server.rounds import run_rounds


@pytest.mark.parametrize(
    ("content", "kept"),
    [(b'{"a": 1}\n{"b": 2}\n', b'{"a": 1}\n{"b": 2}\n'), (b'{"a": 1}\n{"b": ', b'{"a": 1}\n'), (b'{"b": ', b""), (b"", b"")],
)
def test_a_torn_last_line_is_dropped_and_complete_lines_are_kept(tmp_path, content, kept):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    assert drop_torn_tail(path) is (content != kept)
    assert path.read_bytes() == kept


def test_a_torn_line_longer_than_a_read_block_is_dropped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"first\n" + b"x" * 10_000)
    assert drop_torn_tail(path)
    assert path.read_bytes() == b"first\n"


def _arrays(values: list[float]) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.asarray(values, dtype=np.float32))})


def test_a_checkpoint_reads_back_and_a_damaged_one_says_so(tmp_path):
    saved = Checkpoint("fedavg", 3, AGGREGATED, _arrays([1.0, 2.0]), 4.5, {"releases": [[1.2, 1.0, 1]]}, {"A": {"n_train": 5}})
    checkpoint.save(tmp_path, saved)
    back = checkpoint.load(tmp_path, "fedavg")
    assert (back.round, back.phase, back.wall_s, back.strategy_state, back.train_rows) == (3, AGGREGATED, 4.5, saved.strategy_state, saved.train_rows)
    np.testing.assert_array_equal(back.arrays["w"].numpy(), [1.0, 2.0])
    assert checkpoint.load(tmp_path, "fedavg-dp") is None
    checkpoint.checkpoint_path(tmp_path, "fedavg").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"fedavg.pt: unreadable checkpoint \(\w+\); this run cannot be resumed, start a new run$"):
        checkpoint.load(tmp_path, "fedavg")
    with pytest.raises(ValueError, match="phase"):
        checkpoint.save(tmp_path, Checkpoint("fedavg", 1, "half-done", _arrays([0.0]), 0.0))


class _Grid:
    """Every node answers a train message with the global model + 1 (and evaluates to 0.5)."""

    def __init__(self) -> None:
        self.rounds_trained: list[int] = []

    def get_node_ids(self) -> list[int]:
        return [1, 2]

    def send_and_receive(self, messages, timeout=None):  # noqa: ANN001, ANN201
        replies = []
        for msg in messages:
            if msg.metadata.message_type == "train":
                self.rounds_trained.append(int(msg.content["config"]["server-round"]))
                arrays = ArrayRecord({k: Array(v.numpy() + 1) for k, v in msg.content["arrays"].items()})
                content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})})
            else:
                content = RecordDict({"metrics": MetricRecord({"num-examples": 1, "auc": 0.5})})
            content["agency"] = ConfigRecord({"name": f"agency-{msg.metadata.dst_node_id}"})
            replies.append(Message(content, reply_to=msg))
        return replies


class _Recording(FedAvg):
    def __init__(self, recorder: RoundRecorder) -> None:
        super().__init__(min_available_nodes=2, min_train_nodes=2, min_evaluate_nodes=2)
        self.recorder = recorder

    def aggregate_train(self, server_round, replies):  # noqa: ANN001, ANN201
        replies = list(replies)
        self.recorder.train_replies(replies)
        return super().aggregate_train(server_round, replies)

    def aggregate_evaluate(self, server_round, replies):  # noqa: ANN001, ANN201
        replies = list(replies)
        self.recorder.evaluate_replies(server_round, replies)
        return super().aggregate_evaluate(server_round, replies)


def _rounds(tmp_path: Path, grid: _Grid, num_rounds: int) -> tuple[ArrayRecord, list[int]]:
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    recorder = RoundRecorder(tmp_path / "metrics.jsonl", "fedavg", ["agency-1", "agency-2"])
    formed: list[int] = []
    final, _ = run_rounds(
        _Recording(recorder),
        grid,
        run_dir=tmp_path,
        architecture="fedavg",
        recorder=recorder,
        initial=_arrays([0.0]),
        num_rounds=num_rounds,
        timeout=10,
        train_config=ConfigRecord({}),
        evaluate_config=ConfigRecord({}),
        on_model=lambda server_round, arrays: formed.append(server_round),
    )
    return final, formed


def test_the_round_loop_continues_from_its_checkpoint_with_the_same_round_numbers(tmp_path):
    grid = _Grid()
    final, formed = _rounds(tmp_path, grid, 2)
    assert final["w"].numpy().tolist() == [2.0] and formed == [1, 2] and grid.rounds_trained == [1, 1, 2, 2]
    assert checkpoint.load(tmp_path, "fedavg").phase == EVALUATED
    # "Resumed" to 4 rounds: rounds 3 and 4 only, from the checkpointed model.
    grid = _Grid()
    final, formed = _rounds(tmp_path, grid, 4)
    assert final["w"].numpy().tolist() == [4.0] and formed == [3, 4] and grid.rounds_trained == [3, 3, 4, 4]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["round"], r["agency"]) for r in rows) == [(r, f"agency-{n}") for r in range(1, 5) for n in (1, 2)]


def test_a_round_formed_but_not_evaluated_is_evaluated_first_and_not_trained_again(tmp_path):
    saved = Checkpoint("fedavg", 2, AGGREGATED, _arrays([7.0]), 1.0, {}, {"agency-1": {"n_train": 1}, "agency-2": {"n_train": 1}})
    checkpoint.save(tmp_path, saved)
    grid = _Grid()
    final, formed = _rounds(tmp_path, grid, 3)
    assert grid.rounds_trained == [3, 3] and formed == [3] and final["w"].numpy().tolist() == [8.0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["round"], r.get("n_train"), r.get("auc")) for r in rows if r["agency"] == "agency-1"] == [(2, 1, 0.5), (3, 1, 0.5)]


def _agency(tmp_path: Path) -> Agency:
    return Agency("A", tmp_path, tmp_path / "spec.json", tmp_path / "a.sqlite", AgencyPolicy(budget=1.0, delta=1e-5, max_grad_norm=5.0), tmp_path / "audit.jsonl")


PLAN = DPPlan(noise_multiplier=1.1, sample_rate=0.01, steps_per_round=100, rounds=5, max_grad_norm=5.0, target_epsilon=1.0, delta=1e-5, accountant="pld")


def test_an_agency_keeps_its_plan_and_its_last_release_for_this_run_only(tmp_path):
    agency = _agency(tmp_path)
    with pytest.raises(RuntimeError, match="no DP plan kept"):
        releases.keep_release(agency, "run-1", "fedavg-dp", 1, _arrays([1.0]), {"epsilon": 0.2})
    releases.save_plan(agency, "run-1", "fedavg-dp", PLAN)
    assert releases.saved_plan(agency, "run-1", "fedavg-dp") == PLAN
    assert releases.released(agency, "run-1", "fedavg-dp", 1) is None
    releases.keep_release(agency, "run-1", "fedavg-dp", 1, _arrays([1.0, 2.0]), {"epsilon": 0.2})
    arrays, metrics = releases.released(agency, "run-1", "fedavg-dp", 1)
    assert arrays["w"].numpy().tolist() == [1.0, 2.0] and metrics == {"epsilon": 0.2}
    assert releases.released(agency, "run-1", "fedavg-dp", 2) is None  # another round: train it
    # Another run (or architecture) on the same ledger has nothing of this one's.
    assert releases.saved_plan(agency, "run-2", "fedavg-dp") is None and releases.released(agency, "run-2", "fedavg-dp", 1) is None
    assert releases.saved_plan(agency, "run-1", "fedavg-dp-secagg") is None
    kept = tmp_path / "a.releases" / "run-1"  # per run as well as per architecture
    assert (kept / "fedavg-dp.plan.pt").exists() and (kept / "fedavg-dp.release.pt").exists()


def test_an_agency_refuses_to_release_again_a_round_before_its_last(tmp_path):
    agency = _agency(tmp_path)
    releases.save_plan(agency, "run-1", "fedavg-dp", PLAN)
    releases.keep_release(agency, "run-1", "fedavg-dp", 3, _arrays([1.0]), {"epsilon": 0.5})
    with pytest.raises(releases.AlreadyReleased, match="round 2 of fedavg-dp in run run-1 was released before round 3"):
        releases.released(agency, "run-1", "fedavg-dp", 2)
