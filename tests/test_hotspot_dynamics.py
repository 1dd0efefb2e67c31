"""policedata.synthetic's dynamics option: "stable" (the default) draws exactly what it drew
before the option existed, "churn" moves hot areas and its intensity table stays the expectation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from policedata.errors import DataError
from policedata.synthetic import SyntheticSpec, generate, synthetic_records


def area_month_counts(records: pd.DataFrame) -> pd.DataFrame:
    placed = records[records["lsoa_code"] != ""]
    return placed.groupby(["lsoa_code", "month"]).size().unstack(fill_value=0)


def test_stable_is_the_default_and_leaves_the_manifest_alone(tmp_path):
    spec = SyntheticSpec(agencies=2, incidents=4000, months=12)
    assert spec.dynamics == "stable"
    manifest = generate(spec, tmp_path / "data")
    assert "dynamics" not in manifest["spec"]
    churn = generate(SyntheticSpec(agencies=2, incidents=4000, months=12, dynamics="churn"), tmp_path / "churn")
    assert churn["spec"]["dynamics"] == "churn"
    # The same agencies and areas; only the counts move.
    assert [a["areas"] for a in churn["agencies"]] == [a["areas"] for a in manifest["agencies"]]
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["spec"] == manifest["spec"]


def test_churn_moves_hot_areas_and_keeps_the_intensity_an_expectation(tmp_path):
    stable = SyntheticSpec(agencies=2, incidents=20_000, months=24)
    churn = SyntheticSpec(agencies=2, incidents=20_000, months=24, dynamics="churn")
    a, b = (area_month_counts(synthetic_records(s)) for s in (stable, churn))
    # Year-on-year correlation of area counts: lower when rates drift and series come and go.
    def year_on_year(c: pd.DataFrame) -> float:
        return float(np.corrcoef(c.iloc[:, :12].sum(axis=1), c.iloc[:, 12:].sum(axis=1))[0, 1])
    assert year_on_year(b) < year_on_year(a) - 0.02
    generate(churn, tmp_path / "churn")
    intensity = pd.read_csv(tmp_path / "churn" / "ground_truth" / "intensity.csv.gz")
    # Expected incidents per area-month sum to each agency's records (within a few per cent:
    # the records without a location are in the count too).
    manifest = json.loads((tmp_path / "churn" / "manifest.json").read_text())
    assert intensity["expected"].sum() == pytest.approx(sum(x["incidents"] for x in manifest["agencies"]), rel=1e-6)


def test_unknown_dynamics_is_refused(tmp_path):
    with pytest.raises(DataError, match="dynamics='wobbly'"):
        generate(SyntheticSpec(dynamics="wobbly"), tmp_path / "x")
