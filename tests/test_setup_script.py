"""scripts/setup.sh (what `make demo` and `make test` run first), against a stand-in
environment whose `python` only records how it was called: the install shows pip's progress
under a step counter, a finished install is skipped, and a changed pyproject.toml installs again.
Nothing is installed anywhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Stands in for .venv/bin/python: logs its arguments; "has no torch" until pip installed it;
# a pip install of the project leaves bin/peel behind, as the real one does.
FAKE_PYTHON = """#!/bin/bash
here=$(dirname "$0")
echo "$*" >> "$here/../calls.log"
case "$*" in
  "-c "*torch*) [ -e "$here/../torch-installed" ] ;;
  "-m pip install "*torch==*) touch "$here/../torch-installed" ;;
  "-m pip install "*"-e .[test]"*) touch "$here/peel"; chmod +x "$here/peel" ;;
esac
"""


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    venv_bin = root / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(FAKE_PYTHON)
    (venv_bin / "python").chmod(0o755)
    return root


def _setup(root: Path) -> tuple[str, list[str]]:
    log = root / "venv" / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PEEL_VENV": "venv"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return done.stdout, [c for c in calls if c.startswith("-m pip")]


def test_install_shows_progress_then_is_skipped_until_pyproject_changes(tmp_path):
    root = _checkout(tmp_path)
    out, pip = _setup(root)
    # A step counter, and pip's own output (no -q): its "Collecting ..." lines are the progress.
    assert "setup [1/3]" in out and "setup [2/3] installing torch" in out and "setup [3/3]" in out
    assert len(pip) == 2 and all("-q" not in c.split() for c in pip), pip
    assert "source venv/bin/activate" in out  # how to get `peel` on the PATH
    assert (root / "venv" / ".peel-install").exists()

    out, pip = _setup(root)
    assert pip == [] and "up to date" in out

    with open(root / "pyproject.toml", "a", encoding="utf-8") as fh:
        fh.write("\n# a new dependency would change this file\n")
    out, pip = _setup(root)
    # torch is already there: only the project is installed again.
    assert len(pip) == 1 and "-e .[test]" in pip[0] and "torch 2.13.0 (CPU) already installed" in out


def test_a_stamp_without_peel_installs_again(tmp_path):
    root = _checkout(tmp_path)
    _setup(root)
    (root / "venv" / "bin" / "peel").unlink()  # e.g. removed by hand, or a later install stopped half-way
    out, pip = _setup(root)
    assert "up to date" not in out and any("-e .[test]" in c for c in pip)
