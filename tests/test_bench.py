"""`peel bench` (experiments/bench/) and its wrapper scripts/bench.py: the command exists, rejects
bad options with one line, and writes bench.json where asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from experiments.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_bench_help_names_where_bench_json_goes(capsys):
    try:
        main(["bench", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert "bench.json in the current directory" in out
    assert "--check" in out and "--quick" in out


def test_bench_unknown_key_is_one_line(capsys):
    assert main(["bench", "--only", "no_such_figure"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("peel: --only no_such_figure: unknown") and "federation_cost" in err and "\n" not in err


def test_bench_too_few_repeats(capsys):
    assert main(["bench", "--repeats", "2", "--only", "accounting_seconds"]) == 2
    assert "at least 3" in capsys.readouterr().err


def test_bench_writes_the_chosen_figures(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--only", "accounting_seconds", "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert set(result) == {"accounting_seconds", "meta"}
    figure = result["accounting_seconds"]
    assert figure["min"] <= figure["median"] <= figure["max"] and len(figure["values"]) == 3
    assert set(figure["per_accountant"]) == {"pld", "prv", "rdp"}


def test_every_issue_key_is_measured():
    from experiments.bench.suite import MEASUREMENTS

    keys = {m.key for m in MEASUREMENTS}
    assert {"dp_cost", "dp_cost_wide", "federation_cost", "sweep_seconds", "sweep_startup_seconds_per_cell", "accounting_seconds", "generation_records_per_s", "scale"} <= keys


def test_script_wrapper_is_the_same_command(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--only", "nope"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "bench: --only nope: unknown" in done.stderr
