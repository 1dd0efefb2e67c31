"""Crash and resume, end to end: `peel run` is killed with SIGKILL at ten moments spread over a
run (inside every federated architecture, mid-round), then `peel run --resume RUN_DIR` finishes
it. Each time: one metrics row per (architecture, round, agency), one ledger charge per DP
round and agency (none twice, none missing), the same ε as an uninterrupted run, the audit trail
intact and matching the ledgers, and the plain architectures' final models identical to the
uninterrupted run's (they are deterministic given the seed)."""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

PEEL = [sys.executable, "-m", "experiments.cli"]
REPO = Path(__file__).resolve().parents[1]
ROUNDS, AGENCIES, KILLS = 4, 4, 10
CONFIG = f"""seed: 2
output: out
data: {{agencies: {AGENCIES}, incidents: 6000, months: 12}}
task: {{test_months: 3, hidden: [16]}}
federation: {{rounds: {ROUNDS}, batch_size: 64}}
privacy: {{epsilon: 2.0}}
architectures: [central, fedavg, fedavg-dp, fedavg-dp-secagg, fedavg-central-dp]
"""
FEDERATED = ["fedavg", "fedavg-dp", "fedavg-dp-secagg", "fedavg-central-dp"]
DP = ["fedavg-dp", "fedavg-dp-secagg"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _start(cwd: Path) -> subprocess.Popen:
    (cwd / "run.yaml").write_text(CONFIG)
    return subprocess.Popen([*PEEL, "run", "run.yaml"], cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _run_dir(cwd: Path) -> Path:
    (run_dir,) = (cwd / "out").iterdir()
    return run_dir


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """An uninterrupted run of the same config."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = _start(cwd)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]
    run_dir = _run_dir(cwd)
    return {"run_dir": run_dir, "trail_lines": _lines(run_dir / "audit.jsonl"), "summary": json.loads((run_dir / "summary.json").read_text())}


def _ledger_rounds(run_dir: Path) -> dict[str, collections.Counter]:
    found = {}
    for path in (run_dir / "data").rglob("*.sqlite"):
        with sqlite3.connect(path) as con:
            found[path.parent.name] = collections.Counter(con.execute("SELECT architecture, round FROM releases").fetchall())
    return found


@pytest.mark.parametrize("kill", range(KILLS))
def test_a_run_killed_mid_round_resumes_with_nothing_lost_or_charged_twice(kill, reference, tmp_path):
    # Kill when the audit trail (every reply and every global model) reaches this share of the
    # uninterrupted run's length: ten moments spread over all four federated architectures.
    target = max(1, int(reference["trail_lines"] * (kill + 0.5) / (KILLS + 0.5)))
    proc = _start(tmp_path)
    deadline = time.monotonic() + 600
    while True:
        trails = list((tmp_path / "out").glob("*/audit.jsonl"))
        if trails and _lines(trails[0]) >= target:
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill at trail line {target}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "the run never reached the kill moment"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = _run_dir(tmp_path)
    assert not (run_dir / "summary.json").exists(), "killed too late: the run had finished"

    resumed = subprocess.run([*PEEL, "run", "--resume", str(run_dir)], cwd=tmp_path, env=_env(), capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())

    # Every round of every federated architecture recorded once per agency.
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    counts = collections.Counter((r["architecture"], r["round"], r["agency"]) for r in rows)
    assert max(counts.values()) == 1
    for arch in FEDERATED:
        assert sorted({(r, a) for x, r, a in counts if x == arch}) == sorted({(r, a["name"]) for r in range(1, ROUNDS + 1) for a in summary["agencies"]}), arch

    # One charge per DP round and agency: none twice, none missing; the same ε as without the kill.
    ledgers = _ledger_rounds(run_dir)
    assert len(ledgers) == AGENCIES
    for agency, charged in ledgers.items():
        # ... and its record count, released (and charged) once before its first DP round.
        assert charged == collections.Counter({("record-count", 0): 1, **{(arch, r): 1 for arch in DP for r in range(1, ROUNDS + 1)}}), agency
    # The same ε as without the kill: agency-level exactly; record-level up to calibration
    # (each run's agencies release their record counts with fresh noise, so their σ differ slightly).
    assert summary["architectures"]["fedavg-central-dp"]["epsilon_max"] == pytest.approx(reference["summary"]["architectures"]["fedavg-central-dp"]["epsilon_max"], rel=1e-9)
    for arch in DP:
        assert summary["architectures"][arch]["epsilon_max"] == pytest.approx(reference["summary"]["architectures"][arch]["epsilon_max"], rel=0.01), arch

    # The trail is intact, closed once, and every repeated release carries the same bytes.
    verified = subprocess.run([*PEEL, "audit", "verify", str(run_dir)], cwd=tmp_path, env=_env(), capture_output=True, timeout=300)
    assert verified.returncode == 0, verified.stdout.decode() + verified.stderr.decode()

    # Plain training is deterministic given the seed: the resumed run's models are the same.
    for name in ("central.pt", "fedavg.pt"):
        mine, theirs = torch.load(run_dir / "models" / name), torch.load(reference["run_dir"] / "models" / name)
        for key in theirs:
            assert torch.allclose(mine[key], theirs[key], atol=1e-6), (name, key)
