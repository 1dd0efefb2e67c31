"""The synthetic generator: determinism, layout, realism and ground truth."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from policedata.errors import DataError
from policedata.ground_truth import outcome_probability
from policedata.loader import load_areas, load_street_folder
from policedata.schema import AREA_COLUMNS, CRIME_TYPES, NO_LOCATION, NO_SUSPECT, STREET_COLUMNS
from policedata.synthetic import SyntheticSpec, agency_sizes, generate, month_range

SPEC = SyntheticSpec(agencies=8, incidents=100_000, months=24, seed=0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic") / "data"
    return out, generate(SPEC, out)


@pytest.fixture(scope="module")
def loaded(generated) -> tuple[pd.DataFrame, object]:
    out, _ = generated
    return load_street_folder(out / "agencies")


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes, except the person keys: hashed with a fresh federation secret per
    data set (tests/test_persons_synthetic.py checks them)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("persons.csv", "federation.key")
    }


# --- determinism and layout -------------------------------------------------------------------


def test_same_spec_gives_identical_files(tmp_path):
    spec = SyntheticSpec(agencies=3, incidents=6_000, months=3, seed=7)
    first, second = _files_after(spec, tmp_path / "a"), _files_after(spec, tmp_path / "b")
    manifests = [json.loads(f.pop("manifest.json")) for f in (first, second)]
    assert first == second
    for manifest in manifests:  # the run time is the only value allowed to differ
        manifest.pop("seconds")
    assert manifests[0] == manifests[1]
    other = _files_after(SyntheticSpec(agencies=3, incidents=6_000, months=3, seed=8), tmp_path / "c")
    other.pop("manifest.json")
    assert other != first


def _files_after(spec: SyntheticSpec, out: Path) -> dict[str, bytes]:
    generate(spec, out)
    return _files(out)


def test_layout_and_manifest(generated):
    out, manifest = generated
    assert manifest["spec"]["incidents"] == SPEC.incidents
    assert sum(a["incidents"] for a in manifest["agencies"]) == SPEC.incidents
    assert json.loads((out / "manifest.json").read_text()) == manifest
    months = month_range(SPEC.start_month, SPEC.months)
    assert months[0] == "2023-01" and months[-1] == "2024-12"
    slugs = [a["slug"] for a in manifest["agencies"]]
    assert len(set(slugs)) == len(slugs) and len({a["name"] for a in manifest["agencies"]}) == len(slugs)
    for agency in manifest["agencies"]:
        assert re.fullmatch(r"[a-z0-9-]+", agency["slug"])
        assert re.fullmatch(r"[A-Z][a-z]+ (Police|Constabulary)", agency["name"])
        folder = out / agency["folder"]
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert files == sorted(["federation.key", "persons.csv", *(f"{m}/{m}-{agency['slug']}-street.csv" for m in months)])
        header = (folder / months[0] / f"{months[0]}-{agency['slug']}-street.csv").read_text().splitlines()[0]
        assert header == ",".join(STREET_COLUMNS)
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_loader_reads_generated_folder_back(generated, loaded):
    _, manifest = generated
    records, report = loaded
    assert report.files == SPEC.agencies * SPEC.months
    assert report.rows == len(records) == SPEC.incidents
    assert report.per_agency == {a["name"]: a["incidents"] for a in sorted(manifest["agencies"], key=lambda a: a["name"])}
    assert report.rows_unknown_crime_type == 0
    assert (records["agency"] == records["falls_within"]).all()
    assert (records["reported_by"] == records["falls_within"]).all()
    assert (records["context"] == "").all()


def test_areas_table(generated, loaded):
    out, manifest = generated
    records, _ = loaded
    areas = load_areas(out / "areas.csv")
    assert list(areas.columns) == [*AREA_COLUMNS, "agency"]
    assert areas["LSOA code"].str.fullmatch(r"E01\d{6}").all() and areas["LSOA code"].is_unique
    assert areas["LSOA name"].str.fullmatch(r"[A-Z][a-z]+ \d{3}[A-D]").all()
    assert areas["Longitude"].between(-5.5, 1.5).all() and areas["Latitude"].between(50.3, 55.5).all()
    counts = areas.groupby("agency").size()
    assert all(counts[a["name"]] == a["areas"] >= 20 for a in manifest["agencies"])
    located = records[records["lsoa_code"] != ""]
    owner = dict(zip(areas["LSOA code"], areas["agency"], strict=True))
    assert (located["lsoa_code"].map(owner) == located["agency"]).all()
    # Night economy is concentrated: a few central areas, most near zero.
    assert (areas["night_economy"] > 0.3).mean() < 0.15


def test_records_fields(loaded):
    records, _ = loaded
    asb = records["crime_type"] == "Anti-social behaviour"
    assert (records.loc[asb, "crime_id"] == "").all() and (records.loc[asb, "outcome"] == "").all()
    crimes = records[~asb]
    assert crimes["crime_id"].str.fullmatch(r"[0-9a-f]{64}").all() and crimes["crime_id"].is_unique
    assert (crimes["outcome"] != "").all()
    no_location = records["longitude"].isna()
    assert (records["latitude"].isna() == no_location).all()
    assert (records.loc[no_location, "location"] == NO_LOCATION).all()
    assert (records.loc[no_location, ["lsoa_code", "lsoa_name"]] == "").all().all()
    located = records[~no_location]
    assert located["location"].str.startswith("On or near ").all()
    assert located["longitude"].between(-5.6, 1.6).all() and located["latitude"].between(50.2, 55.6).all()


# --- realism ------------------------------------------------------------------------------------


def test_agency_sizes_are_heavy_tailed():
    rng = np.random.default_rng(0)
    for n in (2, 8, 43, 500):
        sizes = agency_sizes(rng, n, 100 * n * 300)
        assert sizes.sum() == 100 * n * 300
        assert 70 <= sizes.max() / sizes.min() <= 130
    # The defaults leave the smallest agency a few hundred training records.
    sizes = agency_sizes(np.random.default_rng(0), 8, 120_000)
    assert 300 <= sizes.min() <= 1_000


def test_crime_type_shares(loaded):
    records, _ = loaded
    shares = records["crime_type"].value_counts(normalize=True)
    assert shares.index[0] == "Violence and sexual offences" and 0.28 <= shares.iloc[0] <= 0.40
    assert shares.index[1] == "Anti-social behaviour" and 0.13 <= shares.iloc[1] <= 0.21
    assert set(shares.index) == set(CRIME_TYPES)


def test_crime_concentrates_in_a_minority_of_areas(generated, loaded):
    out, manifest = generated
    records, _ = loaded
    areas = pd.read_csv(out / "areas.csv", dtype={"LSOA code": str})
    for agency in sorted(manifest["agencies"], key=lambda a: -a["incidents"])[:3]:
        codes = areas.loc[areas["agency"] == agency["name"], "LSOA code"]
        located = records[(records["agency"] == agency["name"]) & (records["lsoa_code"] != "")]
        counts = located["lsoa_code"].value_counts().reindex(codes, fill_value=0).sort_values(ascending=False)
        share = counts.cumsum().to_numpy() / counts.sum()
        top = lambda fraction, share=share, counts=counts: share[max(1, round(fraction * len(counts))) - 1]  # noqa: E731
        assert top(0.20) >= 0.50, agency
        assert top(0.01) <= 0.25, agency  # ...but not all crime sits in a handful of areas
        assert (counts > 0).mean() >= 0.9, agency


def test_near_repeats_for_burglary_and_vehicle_crime(loaded):
    records, _ = loaded
    located = records[records["lsoa_code"] != ""]

    def lag_one_correlation(crime_type: str) -> float:
        """Correlation of an area's count with its count last month, around the area's mean."""
        of_type = located[located["crime_type"] == crime_type]
        counts = of_type.groupby(["lsoa_code", "month"]).size().unstack(fill_value=0)
        deviation = counts.sub(counts.mean(axis=1), axis=0).to_numpy()
        return float(np.corrcoef(deviation[:, :-1].ravel(), deviation[:, 1:].ravel())[0, 1])

    assert lag_one_correlation("Burglary") > 0.1 and lag_one_correlation("Vehicle crime") > 0.1
    assert lag_one_correlation("Criminal damage and arson") < 0.05
    assert lag_one_correlation("Violence and sexual offences") < 0.05


def test_summer_brings_more_violence_and_anti_social_behaviour(loaded):
    records, _ = loaded
    month_of_year = records["month"].str[5:].astype(int)
    summer, winter = records[month_of_year.isin([6, 7, 8])], records[month_of_year.isin([12, 1, 2])]
    for crime_type in ("Violence and sexual offences", "Anti-social behaviour"):
        assert (summer["crime_type"] == crime_type).sum() > 1.1 * (winter["crime_type"] == crime_type).sum()


def test_outcome_rates_differ_by_crime_type(loaded):
    records, _ = loaded
    crimes = records[records["outcome"] != ""]
    rate = (crimes["outcome"] == NO_SUSPECT).groupby(crimes["crime_type"]).mean()
    assert rate["Drugs"] < 0.10
    assert rate["Vehicle crime"] > 0.70
    assert rate["Bicycle theft"] > 0.70 and rate["Theft from the person"] > 0.70
    assert 0.60 <= rate["Burglary"] <= 0.75
    assert 0.15 <= rate["Violence and sexual offences"] <= 0.30
    assert 0.30 <= rate["Shoplifting"] <= 0.50
    drugs = crimes.loc[(crimes["crime_type"] == "Drugs") & (crimes["outcome"] != NO_SUSPECT), "outcome"]
    assert drugs.value_counts().index[0] == "Offender given a drugs possession warning"
    violence = crimes.loc[crimes["crime_type"] == "Violence and sexual offences", "outcome"]
    assert violence.value_counts().index[0] == "Unable to prosecute suspect"


def test_some_records_have_no_location(loaded):
    records, report = loaded
    assert 0.02 <= report.rows_no_location / report.rows <= 0.05
    per_agency = records["longitude"].isna().groupby(records["agency"]).mean()
    assert per_agency.between(0.01, 0.07).all()


# --- ground truth ---------------------------------------------------------------------------------


def test_ground_truth_matches_generated_outcomes(generated, loaded):
    out, manifest = generated
    records, _ = loaded
    crimes = records[records["crime_id"] != ""]
    probabilities, observed = [], []
    for agency in manifest["agencies"]:
        mine = crimes[crimes["agency"] == agency["name"]]
        p = outcome_probability(out / "ground_truth", agency["slug"], mine["crime_id"], mine["crime_type"], [NO_SUSPECT])
        probabilities.append(p)
        observed.append((mine["outcome"] == NO_SUSPECT).to_numpy())
    p, y = np.concatenate(probabilities), np.concatenate(observed)
    assert ((p > 0) & (p < 1)).all()
    assert abs(p.mean() - y.mean()) < 0.02
    # Calibrated within bins too, not only on average.
    bins = np.digitize(p, [0.2, 0.4, 0.6, 0.8])
    for b in np.unique(bins):
        assert abs(p[bins == b].mean() - y[bins == b].mean()) < 0.03


def test_ground_truth_files(generated):
    out, manifest = generated
    truth = out / "ground_truth"
    given = pd.read_csv(truth / "outcome_given_suspect.csv")
    assert list(given.columns) == ["crime_type", "category", "probability"]
    assert np.allclose(given.groupby("crime_type")["probability"].sum(), 1.0, atol=1e-3)
    assert NO_SUSPECT not in set(given["category"]) and "Anti-social behaviour" not in set(given["crime_type"])
    intensity = pd.read_csv(truth / "intensity.csv.gz")
    assert list(intensity.columns) == ["agency", "LSOA code", "month", "expected"]
    expected_per_agency = intensity.groupby("agency")["expected"].sum()
    for agency in manifest["agencies"]:
        assert expected_per_agency[agency["name"]] == pytest.approx(agency["incidents"], rel=1e-4)
        assert len(intensity[intensity["agency"] == agency["name"]]) == agency["areas"] * SPEC.months
    with gzip.open(truth / f"{manifest['agencies'][0]['slug']}.csv.gz", "rt") as f:
        assert f.readline().strip() == "Crime ID,p_no_suspect"


def test_outcome_probability_of_several_categories(generated, loaded):
    out, manifest = generated
    records, _ = loaded
    agency = manifest["agencies"][0]
    mine = records[(records["agency"] == agency["name"]) & (records["crime_id"] != "")].head(500)
    args = (out, agency["slug"], mine["crime_id"].tolist(), mine["crime_type"].tolist())
    p_ns = outcome_probability(*args, [NO_SUSPECT])
    unable = outcome_probability(*args, ["Unable to prosecute suspect"])
    both = outcome_probability(*args, [NO_SUSPECT, "Unable to prosecute suspect"])
    assert np.allclose(both, p_ns + unable)
    given = pd.read_csv(out / "ground_truth" / "outcome_given_suspect.csv")
    all_categories = given["category"].unique().tolist() + [NO_SUSPECT]
    assert np.allclose(outcome_probability(*args, all_categories), 1.0, atol=1e-3)


def test_outcome_probability_errors(generated):
    out, manifest = generated
    slug = manifest["agencies"][0]["slug"]
    with pytest.raises(DataError, match=r"crime id '0+' not found"):
        outcome_probability(out / "ground_truth", slug, ["0" * 64], ["Burglary"], [NO_SUSPECT])
    with pytest.raises(DataError, match="unknown outcome categories 'Solved'"):
        outcome_probability(out / "ground_truth", slug, [], [], ["Solved"])
    with pytest.raises(DataError, match="nosuch.csv.gz"):
        outcome_probability(out / "ground_truth", "nosuch", [], [], [NO_SUSPECT])


# --- refusals -------------------------------------------------------------------------------------


def test_refuses_non_empty_output_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match=f"{re.escape(str(tmp_path))}: already exists and is not empty"):
        generate(SyntheticSpec(agencies=2, incidents=1_000, months=1), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SyntheticSpec(agencies=0), "agencies=0"),
        (SyntheticSpec(months=0), "months=0"),
        (SyntheticSpec(start_month="2023-13"), "start_month='2023-13'"),
        (SyntheticSpec(agencies=8, incidents=800), "incidents=800: too few"),
    ],
)
def test_rejects_bad_specs(tmp_path, spec, message):
    with pytest.raises(DataError, match=re.escape(message)):
        generate(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_one_month_one_agency(tmp_path):
    manifest = generate(SyntheticSpec(agencies=1, incidents=500, months=1, start_month="2024-12"), tmp_path / "o")
    records, report = load_street_folder(tmp_path / "o" / "agencies")
    assert report.rows == 500 and set(records["month"]) == {"2024-12"}
    assert manifest["agencies"][0]["areas"] == 20
