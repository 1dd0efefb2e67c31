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


def test_a_closed_pipe_ends_budget_show_quietly(tmp_path):
    """`peel budget show | head`: the reader goes away; Peel says nothing and exits 0."""
    from privacy.ledger import Ledger

    for i in range(3):
        (tmp_path / f"a{i}").mkdir()
        with Ledger.open(tmp_path / f"a{i}" / "ledger.sqlite", f"Agency {i}") as ledger:
            ledger.set_budget(4.0, 1e-5, "test")
    process = subprocess.Popen([sys.executable, "-m", "experiments.cli", "budget", "show", str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # before Peel writes a byte: its first write meets a closed pipe
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == ""


def test_ray_scratch_stays_short_under_a_long_tmpdir(tmp_path, monkeypatch):
    import tempfile

    from experiments.config import ConfigError
    from experiments.simulation import MAX_SOCKET_PATH, RAY_SOCKET_SUFFIX, ray_scratch

    long_tmp = tmp_path / ("d" * 120)
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    scratch = ray_scratch()
    try:
        assert not scratch.is_relative_to(long_tmp)
        assert len(str(scratch)) + RAY_SOCKET_SUFFIX <= MAX_SOCKET_PATH
    finally:
        scratch.rmdir()
    monkeypatch.setattr("experiments.simulation.os.access", lambda *_: False)  # /tmp not writable either
    with pytest.raises(ConfigError, match=r"^--engine simulation: Ray's socket paths under TMPDIR=.* would exceed 107 bytes"):
        ray_scratch()


def test_control_characters_never_reach_the_terminal(capsys):
    from experiments.cli import main, terminal_safe

    assert terminal_safe("A\x1b]0;pwned\x07B\x9b\nC\tD") == "A\\x1b]0;pwned\\x07B\\x9b\nC\tD"
    code = main(["report", "no-such\x1b[2Jfolder\nsecond line"])
    err = capsys.readouterr().err
    assert code == 2 and "\x1b" not in err and len(err.splitlines()) == 1, err


def test_a_tex_like_agency_name_is_drawn_as_text():
    from matplotlib.figure import Figure

    from experiments.report.plots import _png

    fig = Figure()
    ax = fig.add_subplot()
    ax.barh([0], [1.0])
    ax.set_yticks([0], ["$\\fakecmd{x}$ Police"])
    ax.set_title("$\\fakecmd{x}$ Police (1,000 train)")
    assert _png(fig).startswith(b"\x89PNG")


def test_no_replies_is_said_in_the_table():
    from experiments.results import _privacy_cell

    assert _privacy_cell({"status": "no-replies", "epsilon_max": None}) == "no replies: untrained model, not a result"


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory) -> Path:
    """A prepared run folder (config, data, spec) that never trained: as a stopped run leaves it."""
    from experiments.config import validate
    from experiments.runner import prepare

    work = tmp_path_factory.mktemp("unfinished")
    config = validate({"output": str(work / "runs"), "data": {"agencies": 3, "incidents": 3000, "months": 4}, "task": {"test_months": 1, "hidden": [8]},
                       "federation": {"rounds": 1, "batch_size": 64}, "architectures": ["fedavg"]}, "c.yaml")
    return prepare(config, "c.yaml").run_dir


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage, fragment", [
    ("checkpoints/fedavg.pt", "checkpoints/fedavg.pt: unreadable checkpoint"),
    ("summary.json", "the run finished (summary.json); there is nothing to resume"),
])
def test_resume_of_a_corrupt_checkpoint_or_a_finished_run_is_one_line(unfinished_run, capsys, damage, fragment):
    from experiments.cli import main

    path = unfinished_run / damage
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not what it should be")
    try:
        before = _tree(unfinished_run)
        code = main(["run", "--resume", str(unfinished_run)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1 and fragment in err, err
        assert _tree(unfinished_run) == before  # no lock, no cut line, nothing written
    finally:
        path.unlink()


def test_peel_trail_verify_is_the_trail_check(tmp_path, capsys):
    """`peel trail verify` is the hash-chained log's check (`peel audit verify` its older name):
    a folder without a trail gets one line and exit 2 from both."""
    from experiments.cli import main

    assert main(["trail", "verify", str(tmp_path)]) == 2
    assert main(["audit", "verify", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.count("no audit trail") == 2
