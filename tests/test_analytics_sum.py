"""Sums and means of a bounded numeric column (issue 16 part 1): fixed point exact through the
secure sum, the noise each mode states, clamping and missing values counted, the ledger charged
at the fixed-point sensitivity, bad queries refused in one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clients.analytics import AnalyticsAgency
from experiments import analyze as an
from experiments.analytics_config import AnalyticsConfig
from federation.policy import AgencyPolicy
from privacy.ledger import Ledger
from privacy.mechanisms import MechanismEvent
from tasks.analytics import QUANTA, Bounded, Domain, Histogram, Query, cell_totals, value_report

MONTHS = ("2024-01", "2024-02")
TYPES = ("Burglary", "Drugs", "Robbery")
DELTA = 1e-5
LO, HI = 50.0, 56.0


def _records(agency: str, n_per_cell: int, rng: np.random.Generator) -> pd.DataFrame:
    cells = [(m, t) for m in MONTHS for t in TYPES]
    rows = [(m, t, "", agency, "E01") for j, (m, t) in enumerate(cells) for _ in range(n_per_cell * (j + 1))]
    frame = pd.DataFrame(rows, columns=["month", "crime_type", "outcome", "agency", "lsoa_code"])
    lat = rng.uniform(49.0, 57.0, len(frame))  # some values outside [LO, HI]: clamped
    lat[rng.random(len(frame)) < 0.05] = np.nan  # some without a value: missing
    frame["latitude"] = lat
    frame["longitude"] = -1.0
    return frame


def _agencies(tmp_path: Path, sizes: list[int], budget: float = 50.0) -> list[AnalyticsAgency]:
    rng = np.random.default_rng(0)  # the synthetic test data, not noise
    return [AnalyticsAgency(f"agency-{i}", tmp_path / f"agency-{i}.sqlite", AgencyPolicy(budget=budget, delta=DELTA, max_grad_norm=1.0), _records(f"agency-{i}", n, rng)) for i, n in enumerate(sizes)]


def _domain(agencies: list[AnalyticsAgency]) -> Domain:
    return Domain(MONTHS, tuple(a.name for a in agencies), crime_types=TYPES)


SUM = Query("s", "sum", ("month", "crime_type"), column="latitude", bounds=(LO, HI)).histograms()[0]


def _settings(**kw: object) -> AnalyticsConfig:
    return AnalyticsConfig(queries=[{"name": "q", "by": ["month", "crime_type"]}], **kw)  # type: ignore[list-item, arg-type]


def test_fixed_point_sum_noise_off_federated_equals_central_for_large_sums(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [15_000, 25_000, 3])  # the largest pooled cell holds 6 × 40,003 records
    domain = _domain(agencies)
    central = an.release("central", SUM, domain, agencies, 0.0, _settings(), "r")
    federated = an.release("federated", SUM, domain, agencies, 0.0, _settings(), "r", noise_off_for_tests=True)
    assert central.values.max() > 100_000 * QUANTA  # far beyond any int32 and beyond Flower's ±8 clip
    np.testing.assert_array_equal(federated.values, central.values)
    # The fixed point is within half a step per record of Σ clamp(x): the stated rounding bound.
    pooled = pd.concat([a.records for a in agencies], ignore_index=True)
    report = value_report(pooled, SUM, domain)
    assert report.quantisation_error <= 6 * 40_003 * SUM.scale / 2
    index = pd.MultiIndex.from_frame(pooled[["month", "crime_type"]])
    exact = pd.Series(np.clip(pooled["latitude"], LO, HI).to_numpy(), index=index).dropna().groupby(level=[0, 1]).sum()
    for i, (m, t) in enumerate((m, t) for m in MONTHS for t in TYPES):
        assert abs(central.values[i] * SUM.scale - exact[(m, t)]) <= report.quantisation_error + 1e-6


def test_clamping_and_missing_values_are_counted_and_bound_one_records_move() -> None:
    records = pd.DataFrame({"month": ["2024-01"] * 5, "crime_type": ["Drugs"] * 5, "outcome": [""] * 5, "agency": ["a"] * 5, "lsoa_code": ["x"] * 5,
                            "latitude": [49.0, 51.0, 60.0, np.nan, 56.0], "longitude": [0.0] * 5})
    domain = Domain(MONTHS, ("a",), crime_types=TYPES)
    h = Histogram("h", ("crime_type",), value=Bounded("latitude", LO, HI))
    report = value_report(records, h, domain)
    assert (report.clamped, report.missing) == (2, 1)  # 49 and 60 clamped; NaN missing; 56 is on the bound
    totals = cell_totals(records, h, domain)
    assert totals[TYPES.index("Drugs")] * h.scale == pytest.approx(50.0 + 51.0 + 56.0 + 56.0, abs=4 * h.scale / 2)
    # One record more moves one cell by at most the sensitivity (QUANTA steps), whatever its value.
    for value in (-1e9, 0.0, 53.0, 1e9):
        more = pd.concat([records, records.iloc[[0]].assign(latitude=value)], ignore_index=True)
        moved = np.abs(cell_totals(more, h, domain) - totals)
        assert moved.sum() <= h.sensitivity and h.sensitivity == QUANTA
    # A mean's count counts only the records with a value.
    mean_count = Query("m", "mean", ("crime_type",), column="latitude", bounds=(LO, HI)).histograms()[1]
    assert cell_totals(records, mean_count, domain)[TYPES.index("Drugs")] == 4


@pytest.mark.parametrize("mode", ["local", "federated", "federated-trusted"])
def test_sum_error_std_within_10_percent_of_stated_sigma(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """200 releases of a 6-cell fixed-point sum (1,200 errors: the std's relative sd is 2%, the
    bound 5 sd away), in the column's units against the stated σ; 95% intervals cover 93–97%."""
    monkeypatch.setattr(AnalyticsAgency, "_charge", lambda self, event, run_id, label: (0.0, 1))  # ledger tested below
    agencies = _agencies(tmp_path, [5, 30, 7, 2])
    domain = _domain(agencies)
    exact = an.pooled(agencies, SUM, domain)
    sigma = 4.0 * SUM.sensitivity  # noise-to-sensitivity ratio 4, in steps
    errors, covered = [], 0
    for i in range(200):
        out = an.release(mode, SUM, domain, agencies, sigma, _settings(tolerate=1), f"r{i}")
        error = (out.values - exact) * SUM.scale
        errors.append(error)
        covered += int((np.abs(error) <= 1.959963984540054 * math.sqrt(out.variance) * SUM.scale).sum())
    errors_all = np.concatenate(errors)
    stated = math.sqrt(out.variance) * SUM.scale
    assert abs(errors_all.std() / stated - 1) < 0.10, (errors_all.std(), stated)
    assert 0.93 <= covered / errors_all.size <= 0.97
    expected = {"local": 2 * sigma, "federated": sigma * math.sqrt(4 / 3), "federated-trusted": sigma}[mode] * SUM.scale
    assert stated == pytest.approx(expected, rel=1e-6)


def test_mean_release_charges_two_histograms_at_their_sensitivities_and_matches_dp_accounting(tmp_path: Path) -> None:
    from dp_accounting.pld import privacy_loss_distribution as pld

    agencies = _agencies(tmp_path, [40, 90])
    analytics = AnalyticsConfig.model_validate(dict(epsilon=1.0, queries=[
        {"name": "c", "by": ["crime_type"]},
        {"name": "lat", "kind": "mean", "by": ["crime_type"], "column": "latitude", "bounds": [LO, HI]},
        {"name": "tot", "kind": "sum", "by": ["month"], "column": "latitude", "bounds": [LO, HI]},
    ]))
    calibrated = an.histogram_sigmas(analytics, DELTA)
    m = calibrated["c"][0]
    assert calibrated["lat.sum"][0] == pytest.approx(m * QUANTA) and calibrated["lat.count"][0] == pytest.approx(m) and calibrated["tot"][0] == pytest.approx(m * QUANTA)
    domain = _domain(agencies)
    outcomes = {q.name: an.run_query(q, analytics, domain, agencies, DELTA, calibrated, "run", with_truth=True) for q in analytics.queries}
    assert all(o.summary["refused"] is None for o in outcomes.values())
    lat = outcomes["lat"]
    assert lat.frame is not None and {"released", "half_width_95", "true"} <= set(lat.frame.columns)
    assert lat.summary["clamped"] > 0 and lat.summary["missing"] > 0 and lat.summary["sensitivity_steps"] == QUANTA
    assert lat.summary["sensitivity_value"] == pytest.approx((HI - LO) / 2)  # the centred sum of a mean
    assert outcomes["tot"].summary["sensitivity_value"] == pytest.approx(HI)  # a plain sum: max(|lo|, |hi|)
    # Truth is the mean of the raw values; the released mean lies within its interval almost always.
    inside = (lat.frame["released"] - lat.frame["true"]).abs() <= 4 * lat.frame["half_width_95"]
    assert inside.all()
    kw = {"value_discretization_interval": 1e-4, "pessimistic_estimate": True}
    independent = pld.from_discrete_gaussian_mechanism(m, sensitivity=1, **kw).self_compose(2)  # c, lat.count
    independent = independent.compose(pld.from_discrete_gaussian_mechanism(m * QUANTA, sensitivity=QUANTA, **kw).self_compose(2))  # lat.sum, tot
    expected = independent.get_epsilon_for_delta(DELTA)
    assert expected == pytest.approx(1.0, rel=0.01)
    for a in agencies:
        with Ledger.open(a.ledger, a.name) as ledger:
            rows, spent = ledger.rows(), ledger.spent()
        assert [int(r["sensitivity"]) for r in rows] == [1, QUANTA, 1, QUANTA]
        assert spent == pytest.approx(expected, rel=0.01)


def test_noise_off_mean_federated_equals_central(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [40, 90, 5])
    analytics = AnalyticsConfig.model_validate(dict(mode="federated", queries=[{"name": "lat", "kind": "mean", "by": ["month", "crime_type"], "column": "latitude", "bounds": [LO, HI]}]))
    central = analytics.model_copy(update={"mode": "central"})
    domain = _domain(agencies)
    sig = an.histogram_sigmas(analytics, DELTA)
    fed = an.run_query(analytics.queries[0], analytics, domain, agencies, DELTA, sig, "r", with_truth=True, noise_off_for_tests=True)
    cen = an.run_query(analytics.queries[0], central, domain, agencies, DELTA, sig, "r", with_truth=True)
    assert fed.frame is not None and cen.frame is not None
    np.testing.assert_array_equal(fed.frame["released"].to_numpy(), cen.frame["released"].to_numpy())
    # Central's mean differs from the truth only by clamping and rounding.
    assert (cen.frame["released"] - cen.frame["true"]).abs().max() < 0.5


def _config(tmp_path: Path, query: str) -> Path:
    path = tmp_path / "a.yaml"
    path.write_text(f"output: {tmp_path / 'runs'}\ndata: {{source: synthetic, agencies: 2, incidents: 2000, months: 4}}\nanalytics: {{queries: [{query}]}}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("query", "message"), [
    ("{name: s, kind: sum, column: latitude}", "bounds: a sum needs public bounds"),
    ("{name: s, kind: mean, column: latitude, bounds: [3, 3]}", "need finite lo < hi"),
    ("{name: s, kind: mean, column: latitude, bounds: [5, 1]}", "need finite lo < hi"),
    ("{name: s, kind: sum, column: age, bounds: [0, 100]}", "analytics.queries.0.column"),
    ("{name: s, kind: sum, bounds: [0, 100]}", "column: a sum needs a numeric column"),
    ("{name: s, kind: count, column: latitude, bounds: [0, 1]}", "only for kind sum or mean"),
])
def test_bad_sum_queries_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], query: str, message: str) -> None:
    from experiments.cli import main

    assert main(["analyze", str(_config(tmp_path, query))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_every_numeric_column_of_the_config_is_one_the_records_have() -> None:
    from typing import get_args

    from experiments.analytics_config import NumericColumn
    from tasks.analytics import NUMERIC_COLUMNS

    assert set(get_args(NumericColumn)) == set(NUMERIC_COLUMNS)


def test_hour_comes_from_a_timed_date_and_is_missing_otherwise() -> None:
    from tasks.analytics import numeric_values

    records = pd.DataFrame({"date": ["2024-01-03T17:45", "2024-01-03", "", "2024-01-03T99:00"]})
    hours = numeric_values(records, "hour")
    assert hours[0] == 17 and np.isnan(hours[1:]).all()
    assert np.isnan(numeric_values(pd.DataFrame({"x": [1]}), "hour")).all()


def test_event_kinds_stay_discrete_gaussian_with_integer_sensitivity() -> None:
    from privacy.count_release import count_event

    assert count_event(400.0, sensitivity=QUANTA) == MechanismEvent("discrete-gaussian", 400.0, QUANTA, 1.0, 1)
