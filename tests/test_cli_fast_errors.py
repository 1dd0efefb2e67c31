"""Config errors come fast and helpful: `peel run` exits 2 with one line before torch or Flower
load; an unknown key gets a "did you mean"; a bad --set is blamed on --set, not the config
file; data.path naming a file where a folder is expected (or the reverse) says so.

Each case is a real process (what a user waits for). The bar is 2 s; the bound here is 5 s
so a loaded CI machine does not fail it, and every measured time is printed (pytest -s)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 5.0
BASE = "data: {agencies: 3, incidents: 3000, months: 6}\ntask: {test_months: 1}\n"
# The process fails if torch or flwr were imported by the time the error is reported.
SCRIPT = (
    "import sys\nfrom experiments.cli import main\nrc = main(sys.argv[1:])\n"
    "assert not {'torch', 'flwr'} & set(sys.modules), 'torch or flwr imported before the config error'\n"
    "sys.exit(rc)\n"
)

CASES = [
    # (name, config text, extra files, args after `run config.yaml`, expected substrings)
    ("typo-nested", BASE + "federation: {rouns: 3}\n", {}, [], ["config.yaml: federation.rouns: unknown key (did you mean 'rounds'?)"]),
    ("typo-top", BASE + "architecture: [central]\n", {}, [], ["config.yaml: architecture: unknown key (did you mean 'architectures'?)"]),
    ("typo-no-close-key", BASE + "privacy: {zzz: 1}\n", {}, [], ["privacy.zzz: unknown key (keys of privacy: unit, person, epsilon, budgets"]),
    ("set-bad-value", BASE, {}, ["--set", "privacy.epsilon=abc"], ["peel: --set 'privacy.epsilon=abc': privacy.epsilon:", "'abc'"]),
    ("set-typo", BASE, {}, ["--set", "federation.round=3"], ["peel: --set 'federation.round=3': federation.round: unknown key (did you mean 'rounds'?)"]),
    ("set-path-is-a-file", BASE, {"street.csv": "Month\n"}, ["--set", "data.source=police_uk", "--set", "data.path=street.csv"],
     ["peel: --set 'data.path=street.csv': data.path: 'street.csv' is a file, not a folder", "police_uk reads a folder"]),
    ("path-is-a-file", "data: {source: police_uk, path: street.csv}\n", {"street.csv": "Month\n"}, [],
     ["peel: config.yaml: data.path: 'street.csv' is a file, not a folder; data.source police_uk reads a folder of *-street.csv files"]),
    ("csv-path-is-a-folder", "data: {source: csv, path: exports, columns: {agency: a, date: d, category: c}}\n", {"exports/x.txt": ""}, [],
     ["config.yaml: data.path: 'exports' is a folder, not a file; data.source csv reads one CSV file"]),
]


@pytest.mark.parametrize(("name", "config", "files", "extra", "expect"), CASES, ids=[c[0] for c in CASES])
def test_config_error_is_fast_one_line_and_helpful(tmp_path: Path, name: str, config: str, files: dict[str, str], extra: list[str], expect: list[str]) -> None:
    (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    for file, text in files.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(text, encoding="utf-8")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", SCRIPT, "run", "config.yaml", *extra], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    print(f"{name}: exit {result.returncode} in {seconds:.2f} s")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    for text in expect:
        assert text in result.stderr
    if "--set" in extra:
        assert "config.yaml" not in result.stderr
    assert seconds < LIMIT_S
    assert not (tmp_path / "runs").exists()
