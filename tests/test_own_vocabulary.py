"""A city's own vocabulary (issue 15, item 2): own labels, declared categories and area codes,
day of week and hour of day, coordinates scaled to a public region with far-outside records
flagged — and no feature that is a statistic of the agency's own records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.baselines import Training, train_central
from experiments.config import ConfigError, load_config, validate
from experiments.own_vocabulary import csv_vocabulary, feature_layout, load_csv
from federation import spec as run_spec
from policedata.csv_region import Box
from policedata.csv_source import CsvVocabulary, load_csv_source
from policedata.errors import DataError
from policedata.loader import load_street_folder
from policedata.partition import write_agency_folders
from policedata.schema import AGENCY, DATE
from tasks import features, registry
from tasks.features import POLICE_UK, FeatureLayout
from tasks.metrics import auc
from tasks.model import initial_model
from tasks.outcome import build_outcome_split
from tasks.reference import logistic_regression_auc

REPO = Path(__file__).resolve().parents[1]
US_CONFIG = REPO / "configs" / "us-city-csv.yaml"
US_FIXTURE = REPO / "tests" / "fixtures" / "us_city"
COLUMNS = {"agency": "Precinct", "date": "Occurred", "latitude": "Lat", "longitude": "Lon", "area": "Hood", "category": "Offense", "outcome": "Arrest", "crime_id": "Case"}
HEADER = "Case,Occurred,Precinct,Hood,Offense,Arrest,Lat,Lon"
ROWS = [
    "c1,2024-01-05 23:30,P1,N1,BURG,YES,44.95,-93.25",
    "c2,2024-01-06 08:00,P1,N2,DUI,NO,44.90,-93.30",
    "c3,2024-02-11 14:15,P2,N1,LIQUOR,NO,,",
    "c4,2024-02-12 02:45,P2,N9,BURG,YES,0.0,0.0",
    "c5,2024-03-01 12:00,P1,N2,DUI,,44.96,-93.21",
    "c6,2024-03-02 18:10,P2,N1,BURG,NO,45.00,-93.20",
]
REGION = Box((44.89, 45.05), (-93.33, -93.19))
LAYOUT = FeatureLayout(categories=("BURG", "DUI"), area_codes=("N1", "N2"), area_covariates=False, time_of_day=True, coordinates="box", region=REGION)


def _csv(tmp_path: Path, rows: list[str], name: str = "incidents.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _load(path: Path, **vocabulary) -> tuple[pd.DataFrame, object]:
    defaults = {"categories": ("BURG", "DUI"), "areas": ("N1", "N2"), "positive": ("YES",), "region": REGION}
    return load_csv_source(path, COLUMNS, {}, "%Y-%m-%d %H:%M", ",", CsvVocabulary(**{**defaults, **vocabulary}))


def test_own_labels_categories_areas_region_and_times_are_counted(tmp_path):
    records, report = _load(_csv(tmp_path, ROWS))
    assert records["outcome"].tolist() == ["YES", "NO", "NO", "YES", "", "NO"]  # the city's own values, unmapped
    assert records[DATE].tolist()[:2] == ["2024-01-05T23:30", "2024-01-06T08:00"]
    assert report.unknown_categories == {"LIQUOR": 1} and report.rows_unknown_crime_type == 1
    assert report.unknown_areas == {"N9": 1}
    assert report.rows_outside_region == 1  # (0, 0): a failed geocode, kept and flagged
    assert report.outcomes == {"YES": 2, "NO": 3}
    lines = "\n".join(report.lines())
    assert "not in data.features.categories" in lines and "'LIQUOR' (1)" in lines
    assert "1 records far outside that region" in lines and "N9" in lines


def test_a_positive_value_that_never_occurs_is_refused(tmp_path):
    path = _csv(tmp_path, ROWS)
    with pytest.raises(DataError, match=r"task.positive: 'Yes' never occurs in column 'Arrest' of .*incidents.csv; its values are 'NO', 'YES'"):
        _load(path, positive=("Yes",))
    with pytest.raises(DataError, match="never occurs"):  # police.uk's default label on an export that has its own
        _load(path, positive=("Investigation complete; no suspect identified",))


def test_far_outside_the_region_can_be_refused(tmp_path):
    with pytest.raises(DataError, match=r"row 5, column 'Lat' \(data.columns.latitude\): \(0, 0\) lies far outside the region"):
        _load(_csv(tmp_path, ROWS), outside_region="error")


def test_encoded_features_of_the_layout(tmp_path):
    records, _ = _load(_csv(tmp_path, ROWS))
    X = features.encode(records, None, LAYOUT)
    assert X.shape == (6, LAYOUT.width)
    col = LAYOUT.column
    assert X[:, [col("crime_type:BURG"), col("crime_type:DUI"), col("crime_type:unknown")]].argmax(axis=1).tolist() == [0, 1, 2, 0, 1, 0]
    assert X[:, [col("area:N1"), col("area:N2"), col("area:unknown")]].argmax(axis=1).tolist() == [0, 1, 0, 2, 1, 0]
    # 2024-01-05 is a Friday (weekday 4), 23:30
    assert X[0, col("weekday_sin")] == pytest.approx(np.sin(2 * np.pi * 4 / 7), abs=1e-6)
    assert X[0, col("hour_cos")] == pytest.approx(np.cos(2 * np.pi * 23.5 / 24), abs=1e-6)
    assert X[:, col("no_time")].tolist() == [0] * 6
    # coordinates: -1..1 inside the box; missing and far outside carry none, flagged
    assert X[0, col("latitude")] == pytest.approx((44.95 - 44.97) / 0.08, abs=1e-5)
    assert X[:, col("no_location")].tolist() == [0, 0, 1, 0, 0, 0]
    assert X[:, col("outside_region")].tolist() == [0, 0, 0, 1, 0, 0]
    assert X[3, col("latitude")] == X[3, col("longitude")] == 0
    assert np.abs(X[:, [col("latitude"), col("longitude")]]).max() <= 1.0
    # a date without a time of day: weekday kept, hour none, flagged
    dated = records.assign(**{DATE: "2024-01-05"})
    Xd = features.encode(dated, None, LAYOUT)
    assert Xd[0, col("weekday_sin")] == X[0, col("weekday_sin")] and Xd[0, col("hour_cos")] == 0 and Xd[0, col("no_time")] == 1


def test_split_labels_own_values_and_counts_flags(tmp_path):
    records, _ = _load(_csv(tmp_path, ROWS))
    split = build_outcome_split(records, None, ["YES"], "2024-03", LAYOUT)
    assert split.y_train.tolist() == [1, 0, 0, 1] and split.y_test.tolist() == [0]  # c5 has no outcome
    assert split.feature_names == list(LAYOUT.names)
    assert split.counts["rows_unknown_category"] == 1 and split.counts["rows_outside_region"] == 1
    assert split.counts["rows_unknown_area"] == 1 and split.counts["rows_no_location"] == 1


def _perturbed(rng: np.random.Generator, rows: list[str], keep: int) -> list[str]:
    """Every row but `keep` changed at random (cells, count), plus extra rows; row `keep` as is."""
    offenses, hoods = ["BURG", "DUI", "LIQUOR", "ROBB"], ["N1", "N2", "N7"]
    out = []
    for i, row in enumerate(rows):
        if i == keep:
            out.append(row)
            continue
        if rng.random() < 0.3:
            continue  # removed
        case, _, precinct, *_ = row.split(",")
        lat, lon = (f"{rng.uniform(30, 60):.4f}", f"{rng.uniform(-120, -60):.4f}") if rng.random() < 0.5 else ("", "")
        out.append(",".join([case, f"2024-0{rng.integers(1, 4)}-{rng.integers(10, 28)} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}", precinct,
                             str(rng.choice(hoods)), str(rng.choice(offenses)), str(rng.choice(["YES", "NO"])), lat, lon]))
    for j in range(int(rng.integers(0, 30))):
        out.append(f"x{j},2024-0{rng.integers(1, 4)}-15 {rng.integers(0, 24):02d}:05,P{rng.integers(1, 3)},N1,DUI,YES,{rng.uniform(44.9, 45):.4f},-93.2")
    return out


@pytest.mark.parametrize("layout", [LAYOUT, FeatureLayout(categories=("BURG",), coordinates="box", time_of_day=True), POLICE_UK], ids=["declared-region", "areas-table-extent", "police-uk"])
def test_one_records_features_do_not_depend_on_the_other_records(tmp_path, layout):
    """The DP claim (one record changes one example): a record's features are the same whatever
    the other records are, through the loader, the agency folders and the encoding."""
    areas = pd.DataFrame({"LSOA code": ["N1", "N2"], "Longitude": [-93.3, -93.2], "Latitude": [44.9, 45.0], "deprivation": [0.2, 0.8], "night_economy": [0.1, 0.5], "population": [900, 1200]})
    rng = np.random.default_rng(7)
    reference = None
    for trial in range(6):
        rows = ROWS if trial == 0 else _perturbed(rng, ROWS, keep=0)
        records, _ = _load(_csv(tmp_path, rows, f"t{trial}.csv"), region=REGION if layout.region else None, positive=())
        written = write_agency_folders(records, tmp_path / f"agencies{trial}")
        folder = tmp_path / f"agencies{trial}" / next(a["folder"] for a in written if a["name"] == "P1")
        back, _ = load_street_folder(folder)  # as the agency reads its own folder
        mine = back[back["crime_id"] == "c1"]
        X = features.encode(back, areas, layout)[back["crime_id"].to_numpy() == "c1"]
        assert len(mine) == 1
        if reference is None:
            reference = X
        np.testing.assert_array_equal(X, reference)


def test_layout_travels_in_the_run_spec_and_sets_the_model_width():
    task = run_spec.TaskSpec("outcome", "2024-01", (8,), ("YES",), features=LAYOUT)
    read = run_spec._build(run_spec.TaskSpec, json.loads(json.dumps(run_spec._plain(__import__("dataclasses").asdict(task)))), "task")
    assert read == task and read.features.names == LAYOUT.names
    assert registry.n_features("outcome", LAYOUT) == LAYOUT.width == len(initial_model([8], 0, LAYOUT.width)[0].weight[0])
    assert registry.n_features("outcome") == features.N_FEATURES == len(features.FEATURE_NAMES)
    assert FeatureLayout.from_dict(None) == POLICE_UK and FeatureLayout.from_dict(LAYOUT.as_dict()) == LAYOUT


def test_police_uk_layout_is_unchanged():
    names = [*(f"crime_type:{t}" for t in features.OUTCOME_CRIME_TYPES), "crime_type:unknown", "month_sin", "month_cos",
             "latitude", "longitude", "no_location", "area_deprivation", "area_night_economy", "area_log_population", "unknown_area"]
    assert list(POLICE_UK.names) == names == list(features.FEATURE_NAMES)


def test_config_keys():
    raw = load_config(US_CONFIG)
    layout = feature_layout(raw)
    assert layout.categories[:2] == ("BURG", "THEFT-MV") and len(layout.area_codes) == 30 and layout.time_of_day
    assert layout.region == Box((44.89, 45.05), (-93.33, -93.19)) and not layout.area_covariates
    assert csv_vocabulary(raw).positive == ("YES",)
    with pytest.raises(ConfigError, match=r"data.features: only for data.source csv"):
        validate({"data": {"features": {"categories": ["A"]}}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"task.positive: unknown outcome category \['YES'\]"):
        validate({"task": {"positive": ["YES"]}}, "c.yaml")  # police.uk data: its own categories
    base = raw.model_dump(mode="json")
    for bad, message in (
        ({"categories": ["A", "A"]}, "'A' is listed twice"),
        ({"areas": ["unknown"]}, "'unknown' is Peel's name"),
        ({"region": {"latitude": [45, 44], "longitude": [-93, -92]}}, "low < high"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate({**base, "data": {**base["data"], "features": bad}}, "c.yaml")


def test_fixture_script_writes_the_committed_bytes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("us_city_make", US_FIXTURE / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    assert (tmp_path / "incidents.csv").read_bytes() == (US_FIXTURE / "incidents.csv").read_bytes()


def test_us_city_mlp_matches_a_pooled_logistic_regression():
    """The issue's bar: on the US-style fixture the pooled MLP (`central`, trained as a run
    trains it) is within 0.02 AUC of a pooled logistic regression on the same features."""
    config = load_config(US_CONFIG)
    layout = feature_layout(config)
    records, report = load_csv(config)
    assert report.outcomes.keys() == {"YES", "NO"} and report.unknown_categories == {"LIQUOR": 250} and report.rows_outside_region > 0
    test_from = sorted(records["month"].unique())[-config.task.test_months]
    splits = {name: build_outcome_split(part, None, config.task.positive, test_from, layout) for name, part in records.groupby(AGENCY)}
    fed = config.federation
    training = Training(lambda: initial_model(config.task.hidden, config.seed, layout.width), fed.rounds * fed.local_epochs, fed.batch_size, fed.learning_rate, config.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `peel run` trains (experiments/runner.py): small models, threads only contend
    try:
        model = train_central(splits, training)
    finally:
        torch.set_num_threads(threads)
    X_test = np.concatenate([s.X_test for s in splits.values()])
    y_test = np.concatenate([s.y_test for s in splits.values()])
    with torch.no_grad():
        mlp = auc(y_test, torch.sigmoid(model(torch.tensor(X_test))).numpy().reshape(-1))
    reference = logistic_regression_auc(list(splits.values()), list(splits.values()), config.seed)
    assert reference is not None
    print(f"us_city: central MLP AUC {mlp:.3f}, pooled logistic regression AUC {reference:.3f}")
    assert reference > 0.75  # the made-up effects are there to be learned
    assert abs(mlp - reference) <= 0.02


def test_without_region_or_areas_table_coordinates_are_no_feature(tmp_path):
    records, report = _load(_csv(tmp_path, ROWS), region=None)
    assert report.rows_outside_region == 0 and "coordinates: no feature: declare data.features.region" in "\n".join(report.lines())
    layout = FeatureLayout(categories=("BURG",), coordinates="box")
    X = features.encode(records, None, layout)
    assert not X[:, [layout.column("latitude"), layout.column("longitude"), layout.column("outside_region")]].any()
    assert X[:, layout.column("no_location")].tolist() == [0, 0, 1, 0, 0, 0]


def test_area_codes_need_an_area_column():
    base = load_config(US_CONFIG).model_dump(mode="json")
    with pytest.raises(ConfigError, match="data.features.areas: no column is mapped to area"):
        validate({**base, "data": {**base["data"], "columns": {**base["data"]["columns"], "area": None}}}, "c.yaml")


def test_data_check_prints_the_own_vocabulary_counts():
    from experiments.data_check import check

    text = "\n".join(check(load_config(US_CONFIG)).lines)
    assert "category outside data.features.categories (10)" in text
    assert "categories not in data.features.categories, encoded as unknown: 'LIQUOR' (250)" in text
    assert "coordinates: scaled to latitude 44.89..45.05" in text and "records far outside that region" in text
    assert "outcome values: 'NO' (4,414), 'YES' (3,241)" in text and "positive (YES): 42.3%" in text


def test_time_of_day_only_with_a_date_column_and_when_wanted():
    config = load_config(US_CONFIG, ["data.features.time_of_day=false"])
    assert not feature_layout(config).time_of_day and "hour_sin" not in feature_layout(config).names
    month_only = load_config(US_CONFIG, ["data.columns.date=null", "data.columns.month=Occurred", "data.date_format=null"])
    assert not feature_layout(month_only).time_of_day


@pytest.mark.parametrize("override, message", [
    ("task.positive=['Yes']", "task.positive: 'Yes' never occurs in column 'Arrest Made' of tests/fixtures/us_city/incidents.csv; its values are 'NO', 'YES'"),
    ("task.positive=[YES]", 'YAML read an unquoted yes/no/on/off/true/false as a boolean; quote your value, e.g. positive: ["YES"]'),
    ("data.features.outside_region=error", "column 'Latitude' (data.columns.latitude): (0, 0) lies far outside the region"),
])
def test_cli_stops_with_one_line(override, message):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "experiments.cli", "data", "check", str(US_CONFIG), "--set", override],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
