"""`peel data check CONFIG`: a dry run in seconds (no torch, no Flower), writing nothing, whose
counts are the ones a run trains and tests on; warnings for small test sets; exit 2 on errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.config import validate
from experiments.data_check import check
from policedata.synthetic import SyntheticSpec, generate

REPO = Path(__file__).resolve().parents[1]
# The bar is 5 s on the default config; measured ~1 s on an idle machine (2 shared cores).
LIMIT_S = 5.0


def _peel(*args: str, cwd: Path = REPO, code: str | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """`peel ARGS` in a fresh interpreter; with `code`, that code runs after main() returns."""
    script = "import sys\nfrom experiments.cli import main\nrc = main(sys.argv[1:])\n" + (code or "") + "\nsys.exit(rc)\n"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    return result, time.perf_counter() - started


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_default_config_prints_counts_fast_without_torch_and_writes_nothing() -> None:
    before = _tree(REPO / "configs")
    no_heavy = "assert not {'torch', 'flwr', 'ray', 'opacus', 'matplotlib'} & set(sys.modules), sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'flwr'))"
    result, seconds = _peel("data", "check", "configs/default.yaml", code=no_heavy)
    print(f"peel data check configs/default.yaml: {seconds:.2f} s")
    assert result.returncode == 0, result.stderr[-2000:]
    assert seconds < LIMIT_S
    out = result.stdout
    assert "all agencies" in out and "120,000" in out  # data.incidents of the default config
    assert out.count("Constabulary") + out.count("Police") >= 8  # one row per agency
    assert "Category coverage:" in out and "Labels:" in out and "Rows set aside: none" in out
    assert "nothing was written" in out
    assert _tree(REPO / "configs") == before


def test_counts_are_the_splits_a_run_uses(tmp_path: Path) -> None:
    """Test-set sizes and train sizes per agency equal those of the task's own split of the
    same records (agency folders made by `peel generate`), and the in-memory synthetic records
    are the ones `generate` writes."""
    from experiments.prepare import materialise
    from policedata.loader import load_street_folder
    from tasks.outcome import build_outcome_split

    raw = {"seed": 4, "data": {"agencies": 3, "incidents": 4000, "months": 6}, "task": {"test_months": 2, "hidden": [8]}}
    config = validate(raw, "test")
    federation = materialise(config, tmp_path / "data")
    synthetic = check(config)
    agencies = validate({**raw, "data": {"source": "agencies", "path": str(tmp_path / "data")}}, "test")
    from_folders = check(agencies)
    table = lambda lines: [line.split()[-6:] for line in lines if line.split() and line.split()[-1].endswith("%")]  # noqa: E731
    assert table(synthetic.lines) == table(from_folders.lines)
    for agency in federation.agencies:
        records, _ = load_street_folder(Path(agency["folder"]))
        split = build_outcome_split(records, None, config.task.positive, federation.test_from)
        row = next(line for line in from_folders.lines if line.startswith(agency["name"]))
        numbers = row[len(agency["name"]):].split()
        assert int(numbers[1].replace(",", "")) == len(split.y_train), row
        assert int(numbers[2].replace(",", "")) == len(split.y_test), row


def test_small_test_sets_warn_and_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("data: {agencies: 3, incidents: 3000, months: 6}\ntask: {test_months: 1, min_test_records: 200}\n")
    result, _ = _peel("data", "check", "config.yaml", "--set", "task.min_test_records=100000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3 and all("task.min_test_records=100000" in w for w in warnings)
    assert "with 3 warning(s)" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # nothing written


def test_police_uk_set_aside_printed_and_errors_exit_2(tmp_path: Path) -> None:
    generate(SyntheticSpec(agencies=3, incidents=4000, months=4, seed=0), tmp_path / "gen")
    (tmp_path / "config.yaml").write_text(
        "data:\n  source: police_uk\n  path: gen/agencies\n"
        "  agency: {column: LSOA name, pattern: '^(Goldby|Longworth) \\d{3}[A-Z]$'}\n"
        "task: {test_months: 1}\n"
    )
    result, seconds = _peel("data", "check", "config.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "records set aside (empty): 'LSOA name' is empty" in result.stdout
    assert "records set aside (no_match)" in result.stdout and "e.g. 'Sedgestead " in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith(("Goldby ", "Longworth ", "Sedgestead "))]
    assert [r.split()[0] for r in rows] == ["Goldby", "Longworth"]

    result, _ = _peel("data", "check", "config.yaml", "--set", "data.agency.unmatched=error", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "does not match the agency pattern" in result.stderr

    result, _ = _peel("data", "check", "config.yaml", "--set", "privacy.budgets={Nowhere: 1}", cwd=tmp_path)
    assert result.returncode == 2 and "privacy.budgets: no agency named 'Nowhere'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "gen"]


@pytest.mark.parametrize("value", ["drop", "error"])
def test_unmatched_is_a_config_key(value: str) -> None:
    assert validate({"data": {"agency": {"unmatched": value}}}, "t").data.agency.unmatched == value
