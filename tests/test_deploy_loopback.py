"""`peel deploy` on loopback: process records and stopping (fast), then a real SuperLink and three
SuperNodes with TLS and SuperNode authentication on free ports (slow): who gets in, who does not,
a fedavg-dp run through them, and nothing left running afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import conftest
import pytest
import yaml

from experiments.deploy import certs, commands, flwr_cli, processes
from experiments.deploy import config as deploy_config
from experiments.deploy.errors import DeployError
from experiments.deploy.layout import Layout

TINY = {**conftest.TINY, "architectures": ["fedavg-dp"]}


# --- process records and stopping (fast) ------------------------------------------------------------


def _start(tmp_path: Path, name: str, script: str) -> processes.Proc:
    env = {**os.environ, processes.MARKER_VAR: str(tmp_path)}
    return processes.start(name, ["bash", "-c", script], tmp_path / f"{name}.log", env, tmp_path)


def test_stop_ends_a_recorded_process_and_its_children(tmp_path: Path) -> None:
    proc = _start(tmp_path, "parent", "sleep 60 & sleep 60 & wait")
    time.sleep(0.3)
    children = processes.descendants(proc.pid, processes.proc_table())
    assert len(children) == 2
    processes.write_record(tmp_path / "processes.json", [proc])
    [record], _ = processes.read_record(tmp_path / "processes.json")
    assert processes.stop([record], timeout=5) == [f"parent: stopped (PID {proc.pid})"]
    table = processes.proc_table()
    assert not any(pid in table for pid in [proc.pid, *children])


def test_stop_finds_orphans_by_the_deploy_marker(tmp_path: Path) -> None:
    """A helper whose parent died (re-parented away from the tree) is still found and stopped."""
    proc = _start(tmp_path, "parent", "setsid sleep 60 & exec sleep 60")
    time.sleep(0.3)
    [orphan] = processes.descendants(proc.pid, processes.proc_table())
    os.kill(proc.pid, signal.SIGKILL)
    time.sleep(0.3)
    assert orphan in processes.marked(str(tmp_path))
    assert processes.stop([proc], marker=str(tmp_path), timeout=5) == [f"parent: was not running (PID {proc.pid})"]
    assert orphan not in processes.proc_table()


def test_stop_never_signals_a_reused_pid(tmp_path: Path) -> None:
    """A recorded PID now held by another process (different start time) is left alone."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        fake = processes.Proc("old", stranger.pid, "not-its-start-time", ["sleep"], "")
        assert processes.stop([fake], timeout=1) == [f"old: was not running (PID {stranger.pid})"]
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_status_and_down_without_a_record_say_so(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no record of running processes"):
        commands.status(Layout(tmp_path))
    with pytest.raises(DeployError, match="no record of running processes"):
        commands.down(Layout(tmp_path))


def test_up_refuses_to_start_without_certificates(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"agencies": [{"name": "A", "folder": str(tmp_path / "a")}]}))
    config = deploy_config.load(path, tmp_path / "d")
    with pytest.raises(DeployError, match="peel deploy init"):
        commands.up(config)
    assert not config.layout.processes.exists()


# --- a real deployment (slow) ---------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A SuperLink and 3 SuperNodes (TLS, SuperNode authentication) over 3 synthetic agencies,
    with HOME pointed at an empty folder that must stay empty."""
    from experiments.config import validate
    from experiments.prepare import synthetic_spec
    from policedata.synthetic import generate

    root = tmp_path_factory.mktemp("deploy")
    home = root / "home"
    home.mkdir()
    saved_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    agencies = root / "agencies"
    generate(synthetic_spec(validate(TINY, "tiny")), agencies)
    link_port, first_node = _free_ports(2)
    path = root / "loopback.yaml"
    path.write_text(yaml.safe_dump({"superlink": {"port": link_port}, "supernodes": {"first_port": first_node}, "agencies": str(agencies), "budget": 2.0}))
    config = deploy_config.load(path, root / "d")
    commands.init(config)
    started = []
    try:
        started = commands.up(config, say=lambda _: None)
        yield config, started, agencies, home
    finally:
        if config.layout.processes.exists():
            commands.down(config.layout)
        if saved_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved_home


def _supernode(config, key: Path | None, *, ca: bool = True, insecure: bool = False, port: int) -> tuple[subprocess.Popen, Path]:
    """A SuperNode that gives up after a few attempts (so a refusal ends the process)."""
    command = [flwr_cli.tool("flower-supernode"), "--superlink", config.address, "--port", str(port), "--max-retries", "2", "--max-wait-time", "20"]
    if insecure:
        command.append("--insecure")
    if ca and not insecure:
        command += ["--root-certificates", str(config.layout.ca_cert)]
    if key is not None:
        command += ["--auth-supernode-private-key", str(key)]
    home = config.layout.root / "intruder" / str(port)
    home.mkdir(parents=True)
    log = home / "supernode.log"
    with open(log, "wb") as out:
        node = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=flwr_cli.environment(config.layout, home), start_new_session=True)
    return node, log


def _ended(started: tuple[subprocess.Popen, Path], timeout: float = 90) -> str:
    """The SuperNode's output once it has given up (its helpers, in its session, are ended too)."""
    node, log = started
    try:
        node.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the SuperNode was not refused within {timeout} s:\n{log.read_text()[-2000:]}")
    finally:
        try:
            os.killpg(node.pid, signal.SIGKILL)  # the session is this test's own
        except ProcessLookupError:
            pass
    return log.read_text()


def _online(config) -> int:
    return sum(1 for n in flwr_cli.nodes(config.layout) if n["status"] == "online")


@pytest.mark.slow
@pytest.mark.deploy
def test_every_agency_is_online_over_tls(deployment) -> None:
    config, started, _, _ = deployment
    assert _online(config) == 3
    assert {p.name for p in started} >= {"superlink", *(f"supernode-{a.slug}" for a in config.agencies)}
    lines = commands.status(config.layout)
    assert "(TLS, SuperNode authentication; warm ClientApp isolation)" in lines[0]
    assert all(" running " in line for line in lines[1:-1]) and lines[-1].endswith("3 of 3 known SuperNodes online")
    record = json.loads(config.layout.processes.read_text())
    assert sorted(record["agencies"]) == sorted(a.name for a in config.agencies)
    # each SuperNode was given its own agency's folder, ledger and budget, and nothing else
    for agency in config.agencies:
        node = next(p for p in started if p.name == f"supernode-{agency.slug}")
        node_config = Path(node.command[node.command.index("--node-config") + 1]).read_text()
        assert str(agency.folder) in node_config and str(agency.ledger) in node_config
        assert all(str(other.folder) not in node_config for other in config.agencies if other != agency)


@pytest.mark.slow
@pytest.mark.deploy
def test_intruders_are_refused(deployment) -> None:
    """(a) an unregistered key, (b) no CA certificate, (c) no TLS at all: none gets in."""
    config, _, _, _ = deployment
    layout = config.layout
    keys = layout.root / "intruder-keys"
    certs.agency_keypair(keys / "unregistered", keys / "unregistered.pub", "intruder")
    certs.agency_keypair(keys / "registered", keys / "registered.pub", "spare")
    flwr_cli.register(layout, keys / "registered.pub", "spare")  # a key the SuperLink knows
    ports = _free_ports(3)
    unregistered = _supernode(config, keys / "unregistered", port=ports[0])
    no_ca = _supernode(config, keys / "registered", ca=False, port=ports[1])
    insecure = _supernode(config, None, insecure=True, port=ports[2])
    out_unregistered, out_no_ca, out_insecure = _ended(unregistered), _ended(no_ca), _ended(insecure)
    assert unregistered[0].returncode != 0 and "[code: 2004] Failed to activate SuperNode" in out_unregistered
    assert no_ca[0].returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in out_no_ca
    assert insecure[0].returncode != 0 and "could not establish a connection" in out_insecure
    # nor can an operator without TLS list the federation
    insecure_cli = Layout(layout.root / "insecure-operator")
    flwr_cli.write_connection(insecure_cli, config.address, insecure=True)
    with pytest.raises(DeployError, match="failed"):
        flwr_cli.nodes(insecure_cli)
    assert _online(config) == 3


@pytest.mark.slow
@pytest.mark.deploy
def test_fedavg_dp_runs_on_the_deployment(deployment, tmp_path) -> None:
    """`peel run --engine deployment`: the same ServerApp and ClientApp as in simulation,
    submitted to the deployment; every agency trains 2 DP rounds from its own folder, charging
    its own ledger; the summary and the audit trail check out."""
    from experiments.cli import main
    from experiments.trail import verify_run

    config, _, agencies, _ = deployment
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "data": {"source": "agencies", "path": str(agencies)}, "output": str(tmp_path / "runs")}))
    assert main(["run", str(cfg), "--engine", "deployment", "--deploy-dir", str(config.layout.root)]) == 0
    [run_dir] = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    dp = summary["architectures"]["fedavg-dp"]
    names = sorted(a.name for a in config.agencies)
    assert sorted(dp["per_agency"]) == names
    assert all(a["updates_sent"] == 2 and a["metrics"]["auc"] is not None for a in dp["per_agency"].values())
    assert 0 < dp["epsilon_max"] <= 2.0 + 1e-9
    assert (run_dir / "models" / "fedavg-dp.pt").exists()
    # Every release is in the hash-chained trail and in the agencies' own ledgers.
    assert verify_run(run_dir) == 0
    kinds = [json.loads(line)["type"] for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    assert kinds.count("train-reply") == 2 * len(names) and kinds[-1] == "close"


@pytest.mark.slow
@pytest.mark.deploy
def test_down_leaves_nothing_running_and_home_untouched(deployment) -> None:
    config, started, _, home = deployment
    marker = str(config.layout.root)
    helpers = processes.marked(marker)  # Flower's own helpers (SuperExec, ...) as well
    assert helpers
    lines = commands.down(config.layout)
    assert all("stopped" in line for line in lines)
    assert processes.survivors(started, marker=marker) == []
    assert not any(pid in processes.proc_table() for pid in helpers)
    assert not config.layout.processes.exists()
    assert list(home.iterdir()) == []
    with pytest.raises(DeployError, match="no record"):
        commands.down(config.layout)
