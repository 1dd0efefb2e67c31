"""Bad inputs the corpus (tests/bad_inputs/) cannot hold, because git and copytree cannot carry
them: FIFOs, symlinks to devices, symlink loops and unreadable folders or files. Each is checked
as the corpus checks its cases: `peel` exits 2 with one line on stderr naming the path, prints
nothing on stdout, writes nothing, and does not hang (the hanging kinds run as real processes
with a timeout)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.config import load_config
from experiments.prepare import materialise
from policedata.schema import NO_SUSPECT, STREET_COLUMNS

REPO = Path(__file__).resolve().parents[1]
HEADER = ",".join(STREET_COLUMNS)
CONFIG = """output: runs
data:
  source: police_uk
  path: download
task: {test_months: 1, hidden: [8]}
federation: {rounds: 1, batch_size: 64}
architectures: [central]
"""
TIMEOUT_S = 120


def _rows(agency: str, month: str, n: int, prefix: str) -> list[str]:
    return [
        f"{prefix}{k},{month},{agency},{agency},-1.5,52.1,On or near Mill Lane,E0100000{k % 3},Area 00{k % 3}A,Burglary,{NO_SUSPECT},"
        for k in range(n)
    ]


def _street(folder: Path, slug: str, agency: str, month: str, n: int = 6) -> Path:
    path = folder / month / f"{month}-{slug}-street.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *_rows(agency, month, n, f"{slug}-{month}-")]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def work(tmp_path) -> Path:
    """A folder with config.yaml and download/: two agencies over two months."""
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    for month in ("2023-01", "2023-02"):
        _street(tmp_path / "download" / "ashmoor", "ashmoor", "Ashmoor Police", month)
        _street(tmp_path / "download" / "goldby", "goldby", "Goldby Police", month)
    return tmp_path


def _state(root: Path) -> dict[str, tuple]:
    """Every path below root without following symlinks or opening special files."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            state[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return state


def _check(code: int | None, stdout: str, stderr: str, expect: list[str], before: dict, work: Path) -> None:
    lines = stderr.splitlines()
    assert code == 2, f"exit {code}; stderr: {stderr[:500]}"
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[:1000]
    assert not stdout, stdout[:300]
    for fragment in expect:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert _state(work) == before, "something changed on disk"


def _run_in_process(work: Path, *argv: str, expect: list[str]) -> None:
    from experiments.cli import main

    before = _state(work)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(work), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    _check(code, out.getvalue(), err.getvalue(), expect, before, work)


def _run_process(work: Path, *argv: str, expect: list[str]) -> float:
    before = _state(work)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "experiments.cli", *argv], cwd=work, env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True, text=True, timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"peel {' '.join(argv)}: still running after {TIMEOUT_S} s (it hangs)")
    _check(done.returncode, done.stdout, done.stderr, expect, before, work)
    return time.monotonic() - started


# ---------------------------------------------------------------- special files: refused before reading, no hang


def test_a_fifo_street_file_is_refused_without_hanging(work):
    os.mkfifo(work / "download" / "goldby" / "2023-02" / "2023-02-pipe-street.csv")
    _run_process(work, "run", "config.yaml", expect=["download/goldby/2023-02/2023-02-pipe-street.csv: is a FIFO (named pipe), not a regular file"])


def test_dev_zero_as_a_street_file_is_refused_without_eating_memory(work):
    (work / "download" / "goldby" / "2023-02" / "2023-02-zero-street.csv").symlink_to("/dev/zero")
    _run_process(work, "run", "config.yaml", expect=["2023-02-zero-street.csv: is a character device, not a regular file"])


def test_a_fifo_config_is_refused_without_hanging(work):
    os.mkfifo(work / "fifo.yaml")
    _run_process(work, "run", "fifo.yaml", expect=["fifo.yaml: cannot read config (not a regular file)"])


def test_a_fifo_areas_table_is_refused(work):
    os.mkfifo(work / "areas.csv")
    (work / "config.yaml").write_text(CONFIG.replace("  path: download\n", "  path: download\n  areas: areas.csv\n"), encoding="utf-8")
    _run_in_process(work, "run", "config.yaml", expect=["areas.csv"])


def test_a_fifo_manifest_is_refused(work):
    (work / "agencies").mkdir()
    os.mkfifo(work / "agencies" / "manifest.json")
    (work / "config.yaml").write_text(CONFIG.replace("source: police_uk", "source: agencies").replace("path: download", "path: agencies"), encoding="utf-8")
    _run_in_process(work, "run", "config.yaml", expect=["'agencies'", "manifest.json"])


# ---------------------------------------------------------------- symlinks: followed, never skipped; loops refused


def test_a_symlinked_agency_folder_is_followed(work, tmp_path_factory):
    """The agency behind a symlink is one of the federation's agencies, with all its records."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for month in ("2023-01", "2023-02"):
        _street(elsewhere / "longworth", "longworth", "Longworth Police", month, n=4)
    (work / "download" / "longworth").symlink_to(elsewhere / "longworth", target_is_directory=True)
    with contextlib.chdir(work):
        federation = materialise(load_config("config.yaml"), work / "data")
    assert sorted(a["name"] for a in federation.agencies) == ["Ashmoor Police", "Goldby Police", "Longworth Police"]
    assert any("Longworth Police: 8 records" in n for n in federation.notes)


def test_a_symlink_loop_is_refused(work):
    (work / "download" / "goldby" / "2023-01" / "loop").symlink_to(work / "download", target_is_directory=True)
    _run_in_process(work, "run", "config.yaml", expect=["download/goldby/2023-01/loop: the same folder as download", "read twice"])


def test_a_folder_linked_twice_is_refused(work):
    (work / "download" / "goldby-again").symlink_to(work / "download" / "goldby", target_is_directory=True)
    _run_in_process(work, "run", "config.yaml", expect=["download/goldby", "the same folder as download/goldby"])


# ---------------------------------------------------------------- unreadable folders and files: an error naming them


def test_an_unreadable_month_folder_is_an_error(work, monkeypatch):
    """Mode 000 as root is still readable, so for root the refusal is simulated at os.scandir;
    for any other user the folder really is chmod 000."""
    locked = work / "download" / "goldby" / "2023-02"
    if os.geteuid() == 0:
        real = os.scandir

        def scandir(path="."):
            if isinstance(path, (str, os.PathLike)) and Path(path).resolve() == locked.resolve():
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
        _run_in_process(work, "run", "config.yaml", expect=["download/goldby/2023-02: cannot read this folder (Permission denied)"])
    else:
        locked.chmod(0)
        try:
            _run_in_process(work, "run", "config.yaml", expect=["download/goldby/2023-02: cannot read this folder (Permission denied)"])
        finally:
            locked.chmod(0o755)


def test_an_unreadable_street_file_is_an_error(work, monkeypatch):
    file = work / "download" / "goldby" / "2023-02" / "2023-02-goldby-street.csv"
    if os.geteuid() == 0:  # root reads mode 000: simulate the refusal
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).name == file.name else real(p, mode, **kw))
    else:
        file.chmod(0)
    try:
        _run_in_process(work, "run", "config.yaml", expect=["download/goldby/2023-02/2023-02-goldby-street.csv: cannot be read (permission denied)"])
    finally:
        file.chmod(0o644)
