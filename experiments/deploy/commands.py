"""`peel deploy init | up | status | down`: a SuperLink and one SuperNode per agency on this
machine, with TLS and SuperNode authentication unless `--insecure` is given.

Every process started is recorded (PID, start time, command, ports, log) in
`<deploy dir>/processes.json` as soon as it starts, so `down` can stop exactly those even after a
failed `up`.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import tomli_w

from experiments.deploy import certs, flwr_cli, processes
from experiments.deploy.config import Agency, DeployConfig
from experiments.deploy.errors import DeployError
from experiments.deploy.layout import Layout
from experiments.deploy.processes import MARKER_VAR, Proc

INSECURE_WARNING = (
    "WARNING: --insecure: the SuperLink and SuperNodes talk WITHOUT TLS and WITHOUT SuperNode "
    "authentication. Model updates travel in clear text and anyone who can reach port {port} can "
    "join the federation as an agency. Use this only to debug on one machine."
)
ONLINE_TIMEOUT = 120.0  # seconds `up` waits for every SuperNode to be online


def _say(line: str) -> None:
    print(line, flush=True)


# --- init -----------------------------------------------------------------------------------------


def init(config: DeployConfig) -> list[Path]:
    """Create the deploy folder with the CA, the SuperLink certificate and the agencies' keys."""
    config.layout.root.mkdir(parents=True, exist_ok=True)
    return certs.init(config.layout, config.superlink.addresses, [a.slug for a in config.agencies])


# --- up -------------------------------------------------------------------------------------------


def _check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DeployError(f"{what}: cannot listen on {host}:{port} ({exc.strerror}); choose another port in the deployment config") from None


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _last_line(log: str) -> str:
    try:
        lines = [line.strip() for line in Path(log).read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if "ERROR" in line or "Error" in line or "[code:" in line]
    return (errors or lines or [""])[-1][-200:]


def _env(config: DeployConfig, home: Path) -> dict[str, str]:
    return flwr_cli.environment(config.layout, home, {MARKER_VAR: str(config.layout.root)})


def superlink_command(config: DeployConfig, insecure: bool) -> list[str]:
    layout, link = config.layout, config.superlink
    command = [flwr_cli.tool("flower-superlink")]
    if insecure:
        command.append("--insecure")
    else:
        command += ["--ssl-ca-certfile", str(layout.ca_cert), "--ssl-certfile", str(layout.superlink_cert), "--ssl-keyfile", str(layout.superlink_key)]
        command.append("--enable-supernode-auth")  # needs TLS (Flower refuses it without)
    command += [
        "--database", str(layout.database),
        "--disable-runtime-dependency-installation",  # offline: the ServerApp runs in this environment
        "--isolation", "subprocess",
        "--host", link.host,
        "--port", str(link.port),
    ]  # fmt: skip
    return command


def write_node_config(config: DeployConfig, agency: Agency) -> Path:
    """The SuperNode's node config as a TOML file (`--node-config FILE.toml`): any agency name
    and path survive quoting this way. The agency's own folder, ledger and budget (and the public areas table) — nothing else."""
    path = config.layout.node_config(agency.slug)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {"agency": agency.name, "data-path": str(agency.folder), "ledger-path": str(agency.ledger), "budget": float(agency.budget)}
    if agency.areas is not None:  # public covariates: on another machine the spec's path means nothing
        values["areas-path"] = str(agency.areas)
    path.write_text(tomli_w.dumps(values), encoding="utf-8")
    return path


def supernode_command(config: DeployConfig, agency: Agency, insecure: bool) -> list[str]:
    layout, nodes = config.layout, config.supernodes
    command = [flwr_cli.tool("flower-supernode"), "--superlink", config.address]
    if insecure:
        command.append("--insecure")
    else:
        command += ["--root-certificates", str(layout.ca_cert), "--auth-supernode-private-key", str(layout.agency_key(agency.slug))]
    command += ["--node-config", str(write_node_config(config, agency)), "--host", nodes.host, "--port", str(agency.port)]
    if nodes.isolation == "subprocess":
        command += ["--isolation", "subprocess"]
    else:  # the ClientApps' executor is started by us and must prove it holds the secret
        command += ["--isolation", "process", "--superexec-auth-secret-file", str(_exec_secret(layout, agency.slug))]
    return command


def _exec_secret(layout: Layout, slug: str) -> Path:
    path = layout.exec_secret(slug)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path


def executor_command(config: DeployConfig, agency: Agency) -> list[str] | None:
    """The process that runs one SuperNode's ClientApps, unless the SuperNode starts its own."""
    runtime = f"{config.supernodes.host}:{agency.port}"
    secret = str(_exec_secret(config.layout, agency.slug))
    if config.supernodes.isolation == "warm":
        return [sys.executable, "-m", "experiments.deploy.warm_exec", "--runtime-api-address", runtime, "--superexec-auth-secret-file", secret]
    if config.supernodes.isolation == "process":
        return [flwr_cli.tool("flower-superexec"), "--insecure", "--runtime-api-address", runtime, "--superexec-auth-secret-file", secret]
    return None


def _running(layout: Layout) -> list[Proc]:
    """The recorded processes still running. A record whose processes have all ended (a crash,
    a reboot) is cleared, with any helper of theirs still about."""
    if not layout.processes.exists():
        return []
    procs, _ = processes.read_record(layout.processes)
    table = processes.proc_table()
    running = [p for p in procs if processes.is_alive(p, table)]
    if not running:
        processes.stop(procs, marker=str(layout.root))
        layout.processes.unlink()
    return running


def _wait_superlink(config: DeployConfig, link: Proc, timeout: float) -> None:
    host = config.superlink.host if config.superlink.host not in ("0.0.0.0", "::") else "127.0.0.1"
    deadline = time.monotonic() + timeout
    while not _port_open(host, config.superlink.port):
        if not processes.is_alive(link):
            raise DeployError(f"the SuperLink exited while starting: {_last_line(link.log)} (log: {link.log})")
        if time.monotonic() > deadline:
            raise DeployError(f"the SuperLink did not open port {config.superlink.port} within {timeout:.0f} s (log: {link.log})")
        time.sleep(0.3)


def _register(config: DeployConfig, say: Callable[[str], None]) -> None:
    """Register every agency's public key (kept in the SuperLink's database across restarts)."""
    for agency in config.agencies:
        try:
            node_id = flwr_cli.register(config.layout, config.layout.agency_pub(agency.slug), agency.name)
            say(f"registered {agency.name}'s public key (node {node_id})")
        except DeployError as exc:
            if "already in use" not in str(exc):
                raise
            say(f"{agency.name}'s public key was already registered")


def wait_online(config: DeployConfig, watch: dict[str, Proc], want: int, timeout: float = ONLINE_TIMEOUT) -> int:
    """Wait until `want` SuperNodes are online at the SuperLink, failing as soon as one of the
    watched processes exits; return how many are online."""
    deadline = time.monotonic() + timeout
    while True:
        dead = [(name, proc) for name, proc in watch.items() if not processes.is_alive(proc)]
        if dead:
            name, proc = dead[0]
            raise DeployError(f"{name} exited: {_last_line(proc.log)} (log: {proc.log})")
        online = sum(1 for n in flwr_cli.nodes(config.layout) if n.get("status") == "online")
        if online >= want:
            return online
        if time.monotonic() > deadline:
            errors = [f"{name}: {line}" for name, proc in watch.items() if "[code:" in (line := _last_line(proc.log))]
            hint = f"; {errors[0]}" if errors else ""
            raise DeployError(f"only {online} of {want} SuperNodes came online within {timeout:.0f} s{hint} (logs in {config.layout.root / 'logs'})")
        time.sleep(1.0)


def up(config: DeployConfig, insecure: bool = False, say: Callable[[str], None] = _say, online_timeout: float = ONLINE_TIMEOUT) -> list[Proc]:
    """Start the SuperLink, register the agencies' keys, start one SuperNode (and ClientApp
    executor) per agency, wait until all are online. On any failure, stop what was started."""
    layout = config.layout
    if running := _running(layout):
        raise DeployError(f"{layout.root}: already up ({', '.join(f'{p.name} PID {p.pid}' for p in running)}); run `peel deploy down` first")
    if not insecure and not layout.ca_cert.exists():
        raise DeployError(f"{layout.root}: no certificates; run `peel deploy init {config.path}` first (or pass --insecure, not recommended)")
    for agency in config.agencies:
        if not agency.folder.is_dir():
            raise DeployError(f"agency {agency.name!r}: data folder {agency.folder} does not exist")
        if not insecure and not layout.agency_key(agency.slug).exists():
            raise DeployError(f"agency {agency.name!r}: no key {layout.agency_key(agency.slug)}; it was added after `peel deploy init` (re-initialise another --dir)")
    _check_port_free(config.superlink.host, config.superlink.port, "superlink.port")
    for agency in config.agencies:
        _check_port_free(config.supernodes.host, agency.port, f"SuperNode of {agency.name!r}")
    if insecure:
        print(INSECURE_WARNING.format(port=config.superlink.port), file=sys.stderr, flush=True)
    layout.superlink_home.mkdir(parents=True, exist_ok=True)
    started: list[Proc] = []
    extra = {"config": str(config.path.resolve()), "insecure": insecure, "isolation": config.supernodes.isolation, "address": config.address, "agencies": [a.name for a in config.agencies]}

    def launch(name: str, command: list[str], home: Path, ports: dict[str, int]) -> Proc:
        home.mkdir(parents=True, exist_ok=True)
        proc = processes.start(name, command, layout.log(name), _env(config, home), home, ports)
        started.append(proc)
        processes.write_record(layout.processes, started, extra)  # recorded before anything else can fail
        return proc

    try:
        link = launch("superlink", superlink_command(config, insecure), layout.superlink_home, {"fleet+control": config.superlink.port})
        flwr_cli.write_connection(layout, config.address, insecure)
        _wait_superlink(config, link, timeout=60.0)
        say(f"SuperLink listening on {config.superlink.host}:{config.superlink.port} ({'INSECURE' if insecure else 'TLS, SuperNode authentication'})")
        if not insecure:
            _register(config, say)
        nodes = {}
        for agency in config.agencies:
            home = layout.node_home(agency.slug)
            nodes[f"{agency.name}'s SuperNode"] = launch(f"supernode-{agency.slug}", supernode_command(config, agency, insecure), home, {"runtime": agency.port})
            if (command := executor_command(config, agency)) is not None:
                nodes[f"{agency.name}'s ClientApp executor"] = launch(f"executor-{agency.slug}", command, home, {})
        online = wait_online(config, nodes, len(config.agencies), online_timeout)
        say(f"{online} SuperNodes online ({config.supernodes.isolation} ClientApp isolation); processes in {layout.processes}")
    except BaseException:
        processes.stop(started, marker=str(layout.root))
        layout.processes.unlink(missing_ok=True)
        raise
    return started


# --- status and down --------------------------------------------------------------------------------


def status(layout: Layout) -> list[str]:
    """One line per recorded process (running or not, PID, ports), and the SuperNodes the
    SuperLink sees online."""
    procs, extra = processes.read_record(layout.processes)
    table = processes.proc_table()
    security = "INSECURE: no TLS, no SuperNode authentication" if extra.get("insecure") else "TLS, SuperNode authentication"
    lines = [f"deployment {layout.root} ({security}; {extra.get('isolation')} ClientApp isolation)"]
    for proc in procs:
        state = "running" if processes.is_alive(proc, table) else "NOT RUNNING"
        ports = ", ".join(f"{k} {v}" for k, v in proc.ports.items())
        lines.append(f"{proc.name:<32} {state:<12} PID {proc.pid:<8} {ports}")
    link = next((p for p in procs if p.name == "superlink"), None)
    if link is not None and processes.is_alive(link, table):
        try:
            listed = flwr_cli.nodes(layout)
            online = sum(1 for n in listed if n.get("status") == "online")
            lines.append(f"SuperLink {extra.get('address')}: {online} of {len(listed)} known SuperNodes online")
        except DeployError as exc:
            lines.append(f"SuperLink {extra.get('address')}: not answering ({exc})")
    return lines


def down(layout: Layout, timeout: float = 10.0) -> list[str]:
    """Stop exactly the recorded processes (and what they started); remove the record."""
    procs, _ = processes.read_record(layout.processes)
    lines = processes.stop(procs, marker=str(layout.root), timeout=timeout)
    left = processes.survivors(procs, marker=str(layout.root))
    if left:
        raise DeployError(f"could not stop PIDs {left}; the record {layout.processes} is kept")
    layout.processes.unlink(missing_ok=True)
    return lines
