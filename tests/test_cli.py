"""The `peel` command line: user errors are one line on stderr, exit code 2, no traceback, and
nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def peel(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "config, extra, fragment",
    [
        ("privacy:\n  epsilon: 0\n", [], "privacy.epsilon"),
        ("privacy:\n  epsilon: -1\n", [], "privacy.epsilon"),
        ("unknown_key: 1\n", [], "unknown_key: unknown key"),
        ("federation:\n  rounds: many\n", [], "federation.rounds"),
        ("data:\n  source: police_uk\n  path: no-such-folder\n", [], "data.path"),
        ("seed: 0\n", ["--set", "privacy.delta=2"], "privacy.delta"),
        ("seed: 0\n", ["--set", "architectures=[central, nope]"], "architectures"),
        ("seed: [\n", [], "invalid YAML"),
    ],
)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path, config, extra, fragment):
    (tmp_path / "c.yaml").write_text(config)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = peel("run", "c.yaml", *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, nothing else


def test_missing_config_file_and_bad_arguments(tmp_path):
    for args in (["run", "missing.yaml"], ["run"], ["bogus-command"], ["run", "c.yaml", "--set", "no-equals-sign"]):
        (tmp_path / "c.yaml").write_text("seed: 0\n")
        result = peel(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "runs").exists()


def test_generate_writes_the_street_layout(tmp_path):
    (tmp_path / "c.yaml").write_text("data:\n  agencies: 3\n  incidents: 3000\n  months: 4\ntask:\n  test_months: 1\n")
    result = peel("generate", "c.yaml", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "out" / "agencies").rglob("*-street.csv"))
    assert len(files) == 3 * 4
    assert all(f.name.startswith(f.parent.name) for f in files)  # YYYY-MM/YYYY-MM-<slug>-street.csv
    again = peel("generate", "c.yaml", "out", cwd=tmp_path)  # refuses to overwrite
    assert again.returncode == 2 and "Traceback" not in again.stderr


def test_bad_data_folder_leaves_no_run_folder(tmp_path):
    data = tmp_path / "download" / "2024-01"
    data.mkdir(parents=True)
    (data / "2024-01-x-street.csv").write_text("Crime ID,Month\nabc,2024-01\n")
    (tmp_path / "c.yaml").write_text("output: out\ndata:\n  source: police_uk\n  path: download\n")
    result = peel("run", "c.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "2024-01-x-street.csv" in result.stderr and "missing columns" in result.stderr
    assert "Traceback" not in result.stderr
    assert list((tmp_path / "out").glob("*")) == []  # the half-made run folder was removed
