"""Submit Peel's ServerApp to a running deployment and wait for it: what
`peel run CONFIG --engine deployment` does once the run folder and federation spec exist.

The same ServerApp and ClientApp as in simulation run here; the only difference is how an agency
finds its data (its SuperNode's node config, see clients/agency.py). `flwr run` bundles the app
from a copy of Peel's code inside the deploy folder, so it can never rewrite the repository's
pyproject.toml, and the bundle holds code only (no run folders, no data).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import tomli_w

from experiments.deploy import flwr_cli, processes
from experiments.deploy.errors import DeployError
from experiments.deploy.layout import Layout
from federation.spec import RunSpec, SpecError
from federation.spec import read as read_spec

REPO = Path(__file__).resolve().parents[2]
POLL_S = 5.0
# The bundle carries the federation spec as `peel-spec.json`, so agencies on other machines can
# read it. While the apps resolve `peel-spec` only as a path on their own machine (loopback), the
# run config names the absolute path; once clients/agency.py and server/app.py resolve a relative
# `peel-spec` against the app's own folder, set this to True to use the bundled copy.
SPEC_IN_BUNDLE = False
BUNDLED_SPEC = "peel-spec.json"


def stage_app(layout: Layout, spec_path: Path | None = None, source: Path = REPO) -> Path:
    """Copy pyproject.toml and Peel's packages (and the spec) into `<deploy dir>/app`, replacing an
    older copy."""
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    packages = sorted({p.split(".")[0] for p in project["tool"]["setuptools"]["packages"]})
    if "federations" in project.get("tool", {}).get("flwr", {}):
        raise DeployError(f"{source / 'pyproject.toml'}: remove [tool.flwr.federations]; connections live in the deploy folder")
    app = layout.app
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir(parents=True)
    shutil.copy2(source / "pyproject.toml", app / "pyproject.toml")
    for package in packages:
        shutil.copytree(source / package, app / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if spec_path is not None:
        shutil.copy2(spec_path, app / BUNDLED_SPEC)
    return app


def _deployment(layout: Layout) -> dict:
    """The running deployment's record; raises if its SuperLink is not running."""
    procs, extra = processes.read_record(layout.processes)
    link = next((p for p in procs if p.name == "superlink"), None)
    if link is None or not processes.is_alive(link):
        raise DeployError(f"{layout.root}: the SuperLink is not running; start it with `peel deploy up CONFIG`")
    return extra


def _check_agencies(spec: RunSpec, extra: dict, layout: Layout) -> None:
    wanted = sorted(a.name for a in spec.agencies)
    served = sorted(extra.get("agencies", []))
    if wanted != served:
        raise DeployError(f"the run's agencies {wanted} are not the deployment's {served} ({layout.processes}); use data.source: agencies with the deployed folder")
    online = sum(1 for n in flwr_cli.nodes(layout) if n.get("status") == "online")
    if online < len(wanted):
        raise DeployError(f"only {online} of {len(wanted)} SuperNodes are online; see `peel deploy status`")


def submit(layout: Layout, spec_path: Path) -> int:
    """`flwr run` the staged app with the spec; returns the run id."""
    app = stage_app(layout, spec_path)
    overrides = layout.root / "submissions" / f"{spec_path.parent.name}.toml"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    # A TOML file, not "key='value'" on the command line: any path survives quoting.
    spec_ref = BUNDLED_SPEC if SPEC_IN_BUNDLE else str(spec_path.resolve())
    overrides.write_text(tomli_w.dumps({"peel-spec": spec_ref}), encoding="utf-8")
    out = flwr_cli.flwr(layout, ["run", str(app), flwr_cli.CONNECTION, "--run-config", str(overrides)], timeout=300)
    return int(out["run-id"])


def run_status(layout: Layout, run_id: int) -> str:
    """Flower's status of a run, e.g. "running" or "finished:completed"."""
    runs = flwr_cli.flwr(layout, ["ls", flwr_cli.CONNECTION, "--run-id", str(run_id)])["runs"]
    return str(runs[0]["status"]) if runs else "unknown"


def wait(layout: Layout, run_id: int, log_file: Path, timeout: float | None = None) -> str:
    """Follow the run's logs into `log_file` until it has finished; return its final status.
    (`flwr run --stream` would exit 0 even when the run failed: the status is read explicitly.)"""
    started = time.monotonic()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        follower = subprocess.Popen(
            [flwr_cli.tool("flwr"), "log", str(run_id), flwr_cli.CONNECTION, "--stream"],
            stdout=out, stderr=subprocess.STDOUT, env=flwr_cli.environment(layout, layout.operator_home), cwd=layout.root,
        )  # fmt: skip
        try:
            while True:
                time.sleep(POLL_S)
                status = run_status(layout, run_id)
                if status.startswith("finished"):
                    return status
                if timeout is not None and time.monotonic() - started > timeout:
                    flwr_cli.flwr(layout, ["stop", str(run_id), flwr_cli.CONNECTION])
                    raise DeployError(f"run {run_id} did not finish within {timeout:.0f} s; stopped it (log: {log_file})")
        finally:
            follower.terminate()
            try:
                follower.wait(timeout=10)
            except subprocess.TimeoutExpired:
                follower.kill()
                follower.wait()


def run_on_deployment(spec_path: Path, deploy_dir: Path, timeout: float | None = None) -> None:
    """Run the federated architectures of a prepared run folder (its federation spec) on the
    deployment running in `deploy_dir`; raises DeployError if the run did not complete. The
    ServerApp writes metrics.jsonl, federated.jsonl and the models into the run folder, as in
    simulation; Flower's log of the run goes to `<run folder>/flower-run.log`."""
    layout = Layout(Path(deploy_dir).resolve())
    try:
        spec = read_spec(spec_path)
    except SpecError as exc:
        raise DeployError(str(exc)) from None
    _check_agencies(spec, _deployment(layout), layout)
    run_id = submit(layout, Path(spec_path))
    log_file = spec.run_dir / "flower-run.log"
    status = wait(layout, run_id, log_file, timeout)
    if status != "finished:completed":
        raise DeployError(f"Flower run {run_id} ended {status}; see {log_file} and {layout.root / 'logs'}")
