"""The operator's side: Flower's `flwr` CLI run with a private FLWR_HOME inside the deploy folder,
whose config.toml names one connection, `peel`, to the deployment's SuperLink.

Every call asks for `--format json` and checks its "success" field: `flwr` exits 0 even when it
could not reach the SuperLink.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from experiments.deploy.errors import DeployError
from experiments.deploy.layout import Layout

CONNECTION = "peel"
# Quiet and offline, as experiments/quiet.py does for `peel run` (see ../shared/notes).
OFFLINE_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "PYTHONUNBUFFERED": "1",
    # Flower's SuperExec asks its SuperNode for a new ClientApp task once a second by default;
    # every message of every round waits for that poll.
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.25",
}


def bin_dir() -> Path:
    """The folder of this Python's console scripts (flwr, flower-superlink, ...)."""
    return Path(sys.executable).parent


def tool(name: str) -> str:
    path = bin_dir() / name
    if not path.exists():
        raise DeployError(f"{path}: Flower's `{name}` is not installed next to this Python (install Peel into this environment)")
    return str(path)


def environment(layout: Layout, flwr_home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every process `peel deploy` starts: offline, Flower's state in
    `flwr_home`, caches in the deploy folder (nothing written to $HOME), the venv's scripts first
    on PATH (Flower starts `flower-superexec` and `flwr-clientapp` by name)."""
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    cache = layout.cache
    env.update(
        {
            "FLWR_HOME": str(flwr_home),
            "XDG_CACHE_HOME": str(cache),
            "MPLCONFIGDIR": str(cache / "matplotlib"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
            "PATH": f"{bin_dir()}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(extra or {})
    return env


def write_connection(layout: Layout, address: str, insecure: bool) -> Path:
    """$FLWR_HOME/config.toml of the operator: the `peel` connection, TLS-verified with the CA."""
    home = layout.operator_home
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]", f"address = {json.dumps(address)}"]
    lines.append("insecure = true" if insecure else f"root-certificates = {json.dumps(str(layout.ca_cert))}")
    path = home / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def flwr(layout: Layout, args: Sequence[str], timeout: float = 60.0) -> dict:
    """Run `flwr ARGS --format json` as the operator; return its JSON, or raise DeployError with
    Flower's own message."""
    command = [tool("flwr"), *args, "--format", "json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment(layout, layout.operator_home), cwd=layout.root)
    except subprocess.TimeoutExpired:
        raise DeployError(f"`flwr {' '.join(args)}` did not answer within {timeout:.0f} s") from None
    try:
        # Flower prints progress before the JSON object on stdout: take the last object.
        out = json.loads(done.stdout[done.stdout.index("{") :]) if "{" in done.stdout else {}
    except ValueError:
        out = {}
    if not out.get("success", False):
        reason = out.get("error-message") or done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
        reason = " ".join(line.strip() for line in reason.splitlines() if line.strip() and not line.startswith("Using SuperLink"))
        raise DeployError(f"`flwr {' '.join(args[:2])}` failed: {reason}")
    return out


def register(layout: Layout, public_key: Path, name: str) -> int:
    """Register an agency's public key with the SuperLink (SuperNode authentication)."""
    return int(flwr(layout, ["supernode", "register", str(public_key), CONNECTION, "--name", name])["node-id"])


def nodes(layout: Layout) -> list[dict]:
    """The SuperNodes the SuperLink knows, with their status (registered, online, ...)."""
    return list(flwr(layout, ["supernode", "list", CONNECTION])["nodes"])
