"""Kept plans and releases are per run as well as per architecture (a later run on the same
agencies never overwrites a stopped run's), and a run folder has one holder at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from clients import releases
from clients.agency import read_spec
from experiments.cli import main
from experiments.lock import LOCK_FILENAME, RunFolderBusy, hold, release, try_lock
from privacy.budget import DPPlan
from privacy.ledger import Ledger
from tasks.model import initial_model

ROOT = Path(__file__).resolve().parents[1]


def _arrays(values: list[float]) -> ArrayRecord:
    import numpy as np

    return ArrayRecord({"w": Array(np.array(values, dtype=np.float32))})


class _Agency:  # what clients.releases reads of an agency: its ledger path and name
    def __init__(self, ledger: Path) -> None:
        self.ledger, self.name = ledger, "A"


PLAN = DPPlan(noise_multiplier=1.1, sample_rate=0.01, steps_per_round=100, rounds=5, max_grad_norm=5.0, target_epsilon=1.0, delta=1e-5, accountant="pld")


def test_runs_on_the_same_agency_keep_their_own_plans_and_releases(tmp_path):
    agency = _Agency(tmp_path / "a.sqlite")
    other_plan = DPPlan(**{**PLAN.as_dict(), "noise_multiplier": 3.0})
    releases.save_plan(agency, "run-A", "fedavg-dp", PLAN)
    releases.keep_release(agency, "run-A", "fedavg-dp", 2, _arrays([1.0]), {"epsilon": 0.4})
    # Run B on the same agency, same architecture, while A is stopped.
    releases.save_plan(agency, "run-B", "fedavg-dp", other_plan)
    releases.keep_release(agency, "run-B", "fedavg-dp", 1, _arrays([9.0]), {"epsilon": 0.6})
    # A resumed finds its own plan and its own last release, and B its own.
    assert releases.saved_plan(agency, "run-A", "fedavg-dp") == PLAN
    arrays, metrics = releases.released(agency, "run-A", "fedavg-dp", 2)
    assert arrays["w"].numpy().tolist() == [1.0] and metrics == {"epsilon": 0.4}
    assert releases.saved_plan(agency, "run-B", "fedavg-dp") == other_plan
    assert releases.released(agency, "run-B", "fedavg-dp", 1)[0]["w"].numpy().tolist() == [9.0]
    assert (tmp_path / "a.releases" / "run-A" / "fedavg-dp.release.pt").exists()
    assert (tmp_path / "a.releases" / "run-B" / "fedavg-dp.release.pt").exists()
    # A run id that could leave the folder is hashed into one name.
    releases.save_plan(agency, "../../x", "fedavg-dp", PLAN)
    assert releases.saved_plan(agency, "../../x", "fedavg-dp") == PLAN
    assert not (tmp_path.parent / "x").exists() and all(p.parent.parent == tmp_path / "a.releases" for p in (tmp_path / "a.releases").rglob("*.pt"))


def test_a_release_kept_under_the_old_layout_is_still_found(tmp_path):
    import torch

    agency = _Agency(tmp_path / "a.sqlite")
    old = tmp_path / "a.releases"
    old.mkdir()
    torch.save({"run_id": "run-A", "plan": PLAN.as_dict()}, old / "fedavg-dp.plan.pt")
    torch.save({"run_id": "run-A", "round": 3, "state_dict": _arrays([5.0]).to_torch_state_dict(), "metrics": {}}, old / "fedavg-dp.release.pt")
    assert releases.saved_plan(agency, "run-A", "fedavg-dp") == PLAN
    assert releases.released(agency, "run-A", "fedavg-dp", 3)[0]["w"].numpy().tolist() == [5.0]
    assert releases.saved_plan(agency, "run-B", "fedavg-dp") is None


# --- the agency's ClientApp: crash A, run B, resume A ---------------------------------------
@pytest.fixture(autouse=True)
def _flower_task_identity():
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0


def _use_run(spec_path: Path, name: str) -> None:
    spec = json.loads(spec_path.read_text())
    spec["run_dir"] = str(spec_path.parent / name)
    Path(spec["run_dir"]).mkdir(exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    read_spec.cache_clear()


def _train(spec_path: Path, server_round: int) -> Message:
    from clients.app import train

    spec = json.loads(spec_path.read_text())
    config = ConfigRecord({"architecture": "fedavg-dp", "dp": True, "rounds": 2, "local-epochs": 1, "batch-size": 64, "learning-rate": 0.01, "server-round": server_round})
    arrays = ArrayRecord(initial_model(spec["task"]["hidden"], spec["seed"]).state_dict())
    message = Message(RecordDict({"arrays": arrays, "config": config}), dst_node_id=1, message_type="train")
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0, "num-partitions": 3}, state=RecordDict(), run_config={"peel-spec": str(spec_path)})
    return train(message, context)


def _bytes(reply: Message) -> list:
    return [v.numpy().tobytes() for v in reply.content["arrays"].to_torch_state_dict().values()]


def test_a_resumed_run_resends_its_own_release_after_another_run_used_the_agency(tiny_spec, tmp_path):
    spec = json.loads(tiny_spec.read_text())
    for agency in spec["agencies"]:
        agency["ledger"] = str(tmp_path / f"{agency['slug']}.sqlite")
    spec_path = tmp_path / "federation.json"
    spec_path.write_text(json.dumps(spec))
    ledger_path, name = spec["agencies"][0]["ledger"], spec["agencies"][0]["name"]

    _use_run(spec_path, "run-A")
    sent_a = _train(spec_path, 1)  # A's round-1 update left; then A crashed
    assert not sent_a.has_error()
    _use_run(spec_path, "run-B")
    assert not _train(spec_path, 1).has_error()  # B trains the same architecture on the same agency
    with Ledger.open(ledger_path, name) as ledger:
        charged = len(ledger.rows())
    _use_run(spec_path, "run-A")  # `peel run --resume A`: its coordinator asks again for round 1
    again = _train(spec_path, 1)
    assert not again.has_error()
    assert _bytes(again) == _bytes(sent_a)  # the very same release, not a second one
    with Ledger.open(ledger_path, name) as ledger:
        rows = ledger.rows()
    assert len(rows) == charged  # and nothing charged for it
    assert sum(1 for r in rows if (r["run_id"], r["architecture"], r["round"]) == ("run-A", "fedavg-dp", 1)) == 1


# --- the run folder lock ---------------------------------------------------------------------
def test_a_run_folder_has_one_holder(tmp_path):
    first = try_lock(tmp_path)
    assert first is not None
    try:
        assert try_lock(tmp_path) is None  # a second descriptor, as a second process would
        with pytest.raises(RunFolderBusy, match=f"^{tmp_path}: another peel process \\(pid \\d+\\) is running or resuming this run"):
            hold(tmp_path)
    finally:
        import os

        os.close(first)
    hold(tmp_path)
    hold(tmp_path)  # the holder itself may ask again
    release(tmp_path)
    assert (tmp_path / LOCK_FILENAME).exists()


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from experiments.lock import hold
    hold(sys.argv[1])
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_a_second_resume_of_a_held_run_folder_is_one_line_and_exit_2(tmp_path, capsys):
    from conftest import TINY

    from experiments.config import validate
    from experiments.prepare import materialise
    from experiments.runner import open_folder

    run_dir = tmp_path / "run"  # an unfinished run folder: data, config, spec; nothing trained
    config = validate({**TINY, "architectures": ["central"]}, "tiny")
    open_folder(config, "", run_dir, materialise(config, run_dir / "data"))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != LOCK_FILENAME}
    child = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=str(ROOT)), str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert main(["run", "--resume", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"another peel process (pid {child.pid})" in err
    finally:
        child.kill()
        child.wait()
    # The refused resume cut, dropped and wrote nothing.
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != LOCK_FILENAME} == before
    # The holder gone (however it ended: here SIGKILL), the folder can be taken again.
    fd = try_lock(run_dir)
    assert fd is not None
    import os

    os.close(fd)
    # A folder that is no unfinished run is refused before a lock file is made in it.
    other = tmp_path / "other"
    other.mkdir()
    assert main(["run", "--resume", str(other)]) == 2
    assert list(other.iterdir()) == []


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_an_agency_whose_ledger_was_lost_refuses_to_start_over(tiny_spec, tmp_path, how):
    """13.1: the next run after an agency's spent ledger disappears is refused by the agency,
    not trained on a fresh budget."""
    spec = json.loads(tiny_spec.read_text())
    for agency in spec["agencies"]:
        agency["ledger"] = str(tmp_path / f"{agency['slug']}.sqlite")
    spec_path = tmp_path / "federation.json"
    spec_path.write_text(json.dumps(spec))
    ledger_path = Path(spec["agencies"][0]["ledger"])
    _use_run(spec_path, "run-A")
    for server_round in (1, 2):
        assert not _train(spec_path, server_round).has_error()
    if how == "deleted":
        ledger_path.unlink()
    else:
        ledger_path.write_bytes(b"")
    _use_run(spec_path, "run-B")
    refused = _train(spec_path, 1)
    assert refused.has_error()
    assert f"{ledger_path}: ledger {'missing' if how == 'deleted' else 'emptied'}" in refused.error.reason
    assert "peel budget reinit" in refused.error.reason
    assert not ledger_path.exists() if how == "deleted" else ledger_path.stat().st_size == 0  # nothing started over


def test_an_agency_asked_for_another_delta_after_spending_refuses(tiny_spec, tmp_path):
    """12.4 / 13 major: `--set privacy.delta=0.5` after the budget was spent at 1e-5 must not
    buy more rounds: the ledger pinned δ at its first charge."""
    from privacy.accounting import epsilon

    spec = json.loads(tiny_spec.read_text())
    for agency in spec["agencies"]:
        agency["ledger"] = str(tmp_path / f"{agency['slug']}.sqlite")
    spec_path = tmp_path / "federation.json"
    spec_path.write_text(json.dumps(spec))
    first = spec["agencies"][0]
    _use_run(spec_path, "run-A")
    for server_round in (1, 2):
        assert not _train(spec_path, server_round).has_error()
    spec = json.loads(spec_path.read_text())
    for agency in spec["agencies"]:
        agency["policy"]["delta"] = 0.5
    spec_path.write_text(json.dumps(spec))
    _use_run(spec_path, "run-B")
    for server_round in (1, 2, 3):
        reply = _train(spec_path, server_round)
        assert reply.has_error() and "pinned at 1e-05" in reply.error.reason
    with Ledger.open(first["ledger"], first["name"]) as ledger:
        assert ledger.pinned_delta() == 1e-5
        assert {r["run_id"] for r in ledger.rows()} == {"run-A"}
        assert epsilon(ledger.history(), 1e-5) <= first["policy"]["budget"] * (1 + 1e-6)
