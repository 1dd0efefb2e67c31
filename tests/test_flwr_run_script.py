"""scripts/flwr_run.sh: `flwr run .` on a Peel config, with everything Flower started stopped
afterwards and the usual summary.json and report. The argument errors are fast; the whole run
(a local SuperLink, 3 simulated agencies, 2 rounds; about a minute on 2 cores) is `slow`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "flwr_run.sh"


def _run(args: list[str], home: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_without_a_config_it_says_how_to_call_it(tmp_path):
    done = _run([], tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("usage: scripts/flwr_run.sh CONFIG")


def test_a_bad_config_stops_before_flower_starts(tmp_path):
    done = _run([str(tmp_path / "missing.yaml")], tmp_path)
    assert done.returncode == 2
    assert "missing.yaml" in done.stderr and "Traceback" not in done.stderr
    assert "flwr run" not in done.stdout


def _processes_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return [p for p in found if p != os.getpid()]


@pytest.mark.slow
def test_flwr_run_gives_a_summary_and_report_and_leaves_nothing_running(tmp_path):
    out = tmp_path / "runs"
    args = [
        "configs/default.yaml", "--set", f"output={out}", "--set", "data.agencies=3", "--set", "data.incidents=3000",
        "--set", "federation.rounds=2", "--set", "architectures=[central, fedavg, fedavg-dp]", "--set", "audit=false",
    ]
    done = _run(args, tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["architectures"]) == {"central", "fedavg", "fedavg-dp"}
    assert summary["architectures"]["fedavg-dp"]["epsilon_max"] <= 1.0
    assert (run_dir / "report" / "report.html").exists()
    assert "stopped Flower's local SuperLink" in done.stdout
    assert (run_dir / "flwr-home" / "local-superlink" / "superlink.log").exists()
    assert not (tmp_path / ".flwr").exists(), "Flower wrote to the home folder"
    assert _processes_naming(str(run_dir)) == [], "a process of the run is still running"
