"""`peel predict RUN_DIR CSV`: a finished run's saved models score new incidents exactly as the
run scored its own test records; each model's privacy is stated; bad input is one line, exit 2.
Tiny in-process runs (central and local: no Flower), seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from experiments.config import PeelConfig, load_config, validate
from experiments.predict import PredictError, predict, privacy_statement, write_scores
from experiments.run_folder import RunFolder
from experiments.runner import execute, prepare
from tasks.metrics import auc

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = {
    "seed": 4,
    "data": {"agencies": 3, "incidents": 4000, "months": 10},
    "task": {"test_months": 3, "hidden": [16]},
    "federation": {"rounds": 2, "batch_size": 64},
    "architectures": ["central", "local"],
    "audit": False,
}


def _run(config: PeelConfig) -> RunFolder:
    folder = prepare(config, "tiny")
    execute([folder])
    return folder


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> RunFolder:
    out = tmp_path_factory.mktemp("predict-run")
    return _run(validate({**SYNTHETIC, "output": str(out)}, "tiny"))


def _test_files(folder: RunFolder, agency_slug: str) -> list[Path]:
    test_from = folder.federation.test_from
    files = sorted((folder.run_dir / "data" / "agencies" / agency_slug).rglob("*-street.csv"))
    return [f for f in files if f.parent.name >= test_from]


def _peel(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_scores_are_the_runs_own_models_on_its_own_test_records(synthetic_run, tmp_path) -> None:
    folder = synthetic_run
    agency = folder.federation.agencies[-1]
    files = _test_files(folder, agency["slug"])
    street = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files])
    joined = tmp_path / "new-street.csv"
    street.to_csv(joined, index=False)

    prediction = predict(folder.run_dir, joined)
    assert [s.architecture for s in prediction.scored] == ["central", "local"]
    assert len(prediction.records) == len(street)
    split = folder.splits[agency["name"]]
    by_id = dict(zip(prediction.records["crime_id"], range(len(street)), strict=True))
    rows = [by_id[i] for i in split.test_crime_ids]  # the records the run scored (those with an outcome)
    summary = json.loads((folder.run_dir / "summary.json").read_text())
    for scored in prediction.scored:
        assert scored.unscored == 0  # every record is of a run agency: local has its model
        # the same AUC as the run's own scoring of this agency's test records
        expected = summary["architectures"][scored.architecture]["per_agency"][agency["name"]]["metrics"]["auc"]
        assert auc(split.y_test, scored.scores[rows]) == pytest.approx(expected, abs=1e-12)
    assert "no differential privacy" in prediction.statements()[1]

    out = tmp_path / "scores.csv"
    write_scores(prediction, out)
    written = pd.read_csv(out, dtype={"crime_id": str}, keep_default_na=False)
    assert list(written.columns) == ["record", "crime_id", "agency", "crime_type", "score:central", "score:local"]
    assert np.allclose(written["score:central"].to_numpy(float), prediction.scored[0].scores, atol=1e-6)


def test_local_leaves_records_of_unknown_agencies_empty(synthetic_run, tmp_path) -> None:
    folder = synthetic_run
    (first,) = _test_files(folder, folder.federation.agencies[0]["slug"])[:1]
    street = pd.read_csv(first, dtype=str, keep_default_na=False).head(6)
    street.loc[street.index[:2], "Falls within"] = "Elsewhere Police"
    path = tmp_path / "mixed-street.csv"
    street.to_csv(path, index=False)
    prediction = predict(folder.run_dir, path, ["local", "central"])
    local, central = prediction.scored
    assert local.unscored == 2 and np.isnan(local.scores[:2]).all() and not np.isnan(local.scores[2:]).any()
    assert not np.isnan(central.scores).any()
    assert ",Elsewhere Police," in prediction.to_csv() and "records of agencies without a model of their own are left empty" in prediction.statements()[1]


def test_a_city_export_is_scored_in_its_own_format_one_record_at_a_time(tmp_path) -> None:
    config = load_config(ROOT / "configs" / "us-city-csv.yaml", [
        f"output={tmp_path / 'out'}", f"data.path={ROOT / 'tests/fixtures/us_city/incidents.csv'}",
        "architectures=[central]", "audit=false", "federation.rounds=2",
    ])
    folder = _run(config)
    lines = (ROOT / "tests/fixtures/us_city/incidents.csv").read_text().splitlines()
    one = tmp_path / "one.csv"
    one.write_text(lines[0] + "\n" + lines[-1] + "\n")
    single = predict(folder.run_dir, one)
    assert len(single.records) == 1 and single.input_format == "the run's csv format"
    # the same record inside the whole export gets the same score (a record is encoded alone)
    whole = predict(folder.run_dir, ROOT / "tests/fixtures/us_city/incidents.csv")
    assert whole.scored[0].scores[-1] == pytest.approx(single.scored[0].scores[0], abs=1e-6)  # float32 batches
    assert "['YES']" in single.statements()[0]


def test_privacy_is_stated_per_unit() -> None:
    record = privacy_statement("fedavg-dp", {"epsilon_max": 1.0, "delta": 1e-5, "neighbouring": "add-remove"})
    assert "record-level DP: protects one incident record of each agency (add-remove), ε = 1, δ = 1e-05" in record
    agency = privacy_statement("fedavg-central-dp", {"epsilon_max": 2.5, "delta": 1e-5})
    assert "agency-level DP: protects all of one agency's records together, ε = 2.5" in agency
    assert "no differential privacy" in privacy_statement("fedavg", {})


def test_bad_input_is_one_line_and_exit_2(synthetic_run, tmp_path, capsys) -> None:
    run_dir = str(synthetic_run.run_dir)
    street = next(iter(_test_files(synthetic_run, synthetic_run.federation.agencies[0]["slug"])))
    bad_month = tmp_path / "bad-street.csv"
    text = street.read_text().splitlines()
    bad_month.write_text("\n".join([text[0], text[1].replace(text[1].split(",")[1], "2024-13", 1)]) + "\n")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    cases = [
        ((str(tmp_path / "missing"), str(street)), "no such run folder"),
        ((run_dir, str(tmp_path / "nope.csv")), "no such file"),
        ((run_dir, str(other)), "not a data.police.uk street file"),
        ((run_dir, str(bad_month)), "2024-13"),
        ((run_dir, str(street), "--architecture", "fedavg-dp"), "--architecture fedavg-dp: not in this run; it has central, local"),
        ((run_dir, str(street), "--out", str(tmp_path)), "is a folder"),
    ]
    for args, message in cases:  # in process (seconds); the CLI's own exit path is checked below
        assert main(["predict", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    result = _peel("predict", run_dir, str(other), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.startswith("peel: ")
    with pytest.raises(PredictError, match="not a finished run folder"):
        predict(tmp_path, street)


def test_a_hotspot_run_is_refused(synthetic_run, tmp_path) -> None:
    run_dir = tmp_path / "hotspot-run"
    run_dir.mkdir()
    spec = json.loads((synthetic_run.run_dir / "federation.json").read_text())
    spec["task"]["name"] = "hotspot"
    (run_dir / "federation.json").write_text(json.dumps(spec))
    (run_dir / "summary.json").write_text((synthetic_run.run_dir / "summary.json").read_text())
    street = _test_files(synthetic_run, synthetic_run.federation.agencies[0]["slug"])[0]
    with pytest.raises(PredictError, match="a hotspot run scores area-months, not incidents"):
        predict(run_dir, street)
