"""police.uk as it really comes: rows in neighbouring forces' LSOAs and rows without an LSOA are
set aside and counted per reason (data.agency.unmatched: drop), not a hard stop; `error` keeps
the one-line stop. End to end: a tiny `peel run` (in-process engine) prints the counts and
writes them to summary.json and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from policedata.errors import DataError
from policedata.loader import load_street_folder
from policedata.synthetic import SyntheticSpec, generate

# The two districts the fixture's pattern keeps; the third agency's LSOAs are a neighbouring
# force's, and rows without a location have no LSOA at all.
DISTRICTS = ("Goldby", "Longworth")
PATTERN = rf"^({'|'.join(DISTRICTS)}) \d{{3}}[A-Z]$"


@pytest.fixture(scope="module")
def download(tmp_path_factory) -> Path:
    """A folder of data.police.uk street files (synthetic, 3 forces, 4 months) whose LSOA names
    fall in two districts, a neighbouring force's district, or nowhere (no location)."""
    out = tmp_path_factory.mktemp("police-uk") / "gen"
    generate(SyntheticSpec(agencies=3, incidents=4000, months=4, seed=0), out)
    return out / "agencies"


def _expected(folder: Path) -> dict[str, int]:
    """Reasons counted independently of the loader, from the raw files."""
    names = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in folder.rglob("*-street.csv")])["LSOA name"]
    empty = int((names.str.strip() == "").sum())
    towns = names[names.str.strip() != ""].str.rsplit(" ", n=1).str[0]
    assert set(DISTRICTS) < set(towns), "the generator's place names changed; update DISTRICTS"
    return {"empty": empty, "no_match": int((~towns.isin(DISTRICTS)).sum())}


def test_loader_sets_aside_and_counts_per_reason_and_file(download: Path) -> None:
    expected = _expected(download)
    assert expected["empty"] > 0 and expected["no_match"] > 0
    records, report = load_street_folder(download, "LSOA name", PATTERN)
    assert report.set_aside == expected
    assert sorted(report.per_agency) == sorted(DISTRICTS)
    assert report.rows == len(records) == sum(report.per_agency.values())
    by_file = report.set_aside_by_file
    assert {r: sum(f.get(r, 0) for f in by_file.values()) for r in expected} == expected
    assert all(not Path(name).is_absolute() and name.endswith("-street.csv") for name in by_file)
    assert report.set_aside_examples["no_match"].startswith("Sedgestead ")
    lines = report.set_aside_lines()
    assert len(lines) == 2 and f"{expected['no_match']:,} records set aside (no_match)" in lines[1]
    assert "Sedgestead" in lines[1] and "'LSOA name'" in lines[0]


def test_unmatched_error_keeps_the_one_line_stop(download: Path) -> None:
    with pytest.raises(DataError, match=r"line \d+: 'LSOA name' value '.*' does not match the agency pattern"):
        load_street_folder(download, "LSOA name", PATTERN, unmatched="error")


def test_every_row_set_aside_is_an_error_that_names_the_counts(download: Path) -> None:
    with pytest.raises(DataError, match=r"no record has an agency: all .* set aside"):
        load_street_folder(download, "LSOA name", r"^(Nowhere) \d{3}[A-Z]$")


def test_run_prints_counts_and_writes_them_to_summary_and_report(download: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.cli import main

    shutil.copytree(download, tmp_path / "download")
    (tmp_path / "config.yaml").write_text(
        "output: " + str(tmp_path / "runs") + "\n"
        "data:\n  source: police_uk\n  path: " + str(tmp_path / "download") + "\n"
        "  agency: {column: LSOA name, pattern: '" + PATTERN + "'}\n"
        "task: {test_months: 1, hidden: [8]}\nfederation: {rounds: 1, batch_size: 64}\n"
        "architectures: [central, fedavg]\naudit: false\n",
        encoding="utf-8",
    )
    expected = _expected(download)
    assert main(["run", str(tmp_path / "config.yaml"), "--engine", "in-process"]) == 0
    err = capsys.readouterr().err
    for reason, n in expected.items():
        assert f"{n:,} records set aside ({reason})" in err, err[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["data"]["set_aside"] == expected
    per_file = summary["data"]["set_aside_by_file"]
    assert sum(sum(f.values()) for f in per_file.values()) == sum(expected.values())
    assert sorted(a["name"] for a in summary["agencies"]) == sorted(DISTRICTS)
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "Records set aside" in html and f"{expected['no_match']:,}: the agency column does not match" in html
