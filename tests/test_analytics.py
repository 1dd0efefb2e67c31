"""Federated DP analytics (issue 16): exactness through secure aggregation, the noise each mode
states, what the coordinator holds, accounting in the agency's ledger, and refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import server.analytics as coordinator
from clients.analytics import AnalyticsAgency
from experiments import analyze as an
from experiments.analytics_config import AnalyticsConfig
from federation.policy import AgencyPolicy
from federation.secure_sum import MaskedVector
from privacy.count_release import Z95, calibrate_count_sigma
from privacy.ledger import Ledger
from privacy.mechanisms import MechanismEvent
from tasks.analytics import Domain, Histogram, Query, cell_totals

MONTHS = ("2024-01", "2024-02")
TYPES = ("Burglary", "Drugs", "Robbery")
DELTA = 1e-5


def _records(agency: str, counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = [(m, t, "", agency, "E01") for (m, t), n in counts.items() for _ in range(n)]
    return pd.DataFrame(rows, columns=["month", "crime_type", "outcome", "agency", "lsoa_code"])


def _agencies(tmp_path: Path, sizes: list[int], budget: float = 50.0) -> list[AnalyticsAgency]:
    out = []
    for i, n in enumerate(sizes):
        name = f"agency-{i}"
        counts = {(m, t): n * (j + 1) for j, (m, t) in enumerate((m, t) for m in MONTHS for t in TYPES)}
        out.append(AnalyticsAgency(name, tmp_path / f"{name}.sqlite", AgencyPolicy(budget=budget, delta=DELTA, max_grad_norm=1.0), _records(name, counts)))
    return out


def _domain(agencies: list[AnalyticsAgency]) -> Domain:
    return Domain(MONTHS, tuple(a.name for a in agencies), crime_types=TYPES)


HIST = Histogram("by_month_type", ("month", "crime_type"))


def _settings(**kw: object) -> AnalyticsConfig:
    return AnalyticsConfig(queries=[{"name": "q", "by": ["month", "crime_type"]}], **kw)  # type: ignore[list-item, arg-type]


def test_noise_off_federated_equals_central_exactly_above_100000(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [20_000, 35_000, 1])  # the largest pooled cell: 6 × 55,001 = 330,006
    domain = _domain(agencies)
    central = an.release("central", HIST, domain, agencies, 0.0, _settings(), "r")
    federated = an.release("federated", HIST, domain, agencies, 0.0, _settings(), "r", noise_off_for_tests=True)
    assert central.values.max() > 100_000
    np.testing.assert_array_equal(federated.values, central.values)
    assert federated.modulus is not None and federated.modulus > 2 * central.values.max()
    for a in agencies:  # noise off charges nothing
        with Ledger.open(a.ledger, a.name) as ledger:
            assert ledger.history() == []


def test_noise_off_is_refused_unless_a_test_asks(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [5, 5])
    with pytest.raises(an.AnalyticsRefused, match="without noise"):
        an.release("federated", HIST, _domain(agencies), agencies, 0.0, _settings(), "r")


@pytest.mark.parametrize("noise", ["discrete-gaussian", "skellam"])
@pytest.mark.parametrize("mode", ["local", "federated", "federated-trusted"])
def test_error_std_and_interval_coverage_over_200_releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, noise: str) -> None:
    """The noise each mode states: 200 releases of a 24-cell histogram (4,800 errors: the
    coverage's sd is 0.3%, its bounds 6 sd away). The ledger
    is tested below; here charging is counted, not written (200 PLD charges take minutes)."""
    charged: list[MechanismEvent] = []

    def _count_charge(self: AnalyticsAgency, event: MechanismEvent, run_id: str, label: str) -> tuple[float, int]:
        charged.append(event)
        return (0.0, 1)

    monkeypatch.setattr(AnalyticsAgency, "_charge", _count_charge)
    agencies = _agencies(tmp_path, [50, 300, 1000, 7])
    domain = _domain(agencies)
    wide = Histogram("by_month_type_agency", ("month", "crime_type", "agency"))
    exact = an.pooled(agencies, wide, domain)
    sigma = 6.0
    errors, covered = [], 0
    for i in range(200):
        out = an.release(mode, wide, domain, agencies, sigma, _settings(tolerate=1, noise=noise), f"r{i}")
        error = out.values - exact
        errors.append(error)
        covered += int((np.abs(error) <= Z95 * math.sqrt(out.variance)).sum())
    errors_all = np.concatenate(errors)
    stated = math.sqrt(out.variance)
    assert abs(errors_all.std() / stated - 1) < 0.10, (errors_all.std(), stated)
    coverage = covered / errors_all.size
    assert 0.93 <= coverage <= 0.97, coverage
    assert {e.kind for e in charged} == {noise}
    if mode == "local":
        assert stated == pytest.approx(sigma * 2, rel=1e-6)  # four agencies' noise adds up: 2σ
    elif mode == "federated":
        assert stated == pytest.approx(sigma * math.sqrt(4 / 3), rel=1e-6)  # 4 shares of σ²/3 (t = 1; Skellam: no floor)
        # each agency is charged the noise the sum keeps with 1 share missing: σ, or Sk(σ²/2)
        assert charged[0].noise == pytest.approx(sigma if noise == "discrete-gaussian" else sigma**2 / 2, rel=1e-12)
    else:
        assert stated == pytest.approx(sigma, rel=1e-6)


def test_coordinator_never_holds_one_agencys_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[object] = []
    real = coordinator.secure_sum

    def spy(vectors: list[MaskedVector]) -> np.ndarray:
        received.extend(vectors)
        return real(vectors)

    monkeypatch.setattr(an, "secure_sum", spy)
    # Two agencies, many cells, every exact count 0 and noise shares small: an unmasked vector
    # would sit near 0 (or near M); a masked one is uniform mod M.
    names = ("a", "b")
    big = Histogram("areas", ("area",))
    domain = Domain(MONTHS, names, areas=tuple(f"E{i:05d}" for i in range(4096)))
    empty = pd.DataFrame(columns=["month", "crime_type", "outcome", "agency", "lsoa_code"])
    agencies = [AnalyticsAgency(n, tmp_path / f"{n}.sqlite", AgencyPolicy(budget=100.0, delta=DELTA, max_grad_norm=1.0), empty) for n in names]
    out = an.release("federated", big, domain, agencies, 4.0, _settings(tolerate=1, max_cell_count=10**6), "r")
    assert len(received) == 2 and all(isinstance(v, MaskedVector) for v in received)
    for v in received:
        assert isinstance(v, MaskedVector)
        top_bit = (v.values >> np.uint64(int(v.modulus).bit_length() - 2)) & np.uint64(1)
        assert 0.45 < top_bit.mean() < 0.55  # uniform mod M: half the values in the upper half
        decoded = np.where(v.values >= v.modulus // 2, v.values.astype(np.int64) - v.modulus, v.values.astype(np.int64))
        assert np.mean(np.abs(decoded) < 1000) < 0.01  # not the agency's noisy counts
    assert np.abs(out.values).max() < 60  # the sum is the noise shares alone (exact counts 0)


def charge_dpsgd_rounds(agencies: list[AnalyticsAgency]) -> tuple[float, float, int]:
    """Three DP-SGD rounds on each agency's ledger, charged as clients/app.py charges them; the round."""
    sgd = (1.1, 0.02, 200)
    for a in agencies:
        with Ledger.open(a.ledger, a.name) as ledger:
            for r in range(3):
                ledger.charge("run", "fedavg-dp", r + 1, sgd, delta=DELTA, accountant="pld", budget=a.policy.budget)
    return sgd


def test_ledger_after_dpsgd_and_analytics_matches_dp_accounting(tmp_path: Path) -> None:
    """A ledger holding DP-SGD rounds (charged as clients/app.py charges them), then the analytics
    block, reports the ε an independent dp-accounting PLD composition gives, within 1%."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    agencies = _agencies(tmp_path, [40, 90])
    sgd = charge_dpsgd_rounds(agencies)
    analytics = AnalyticsConfig.model_validate(dict(epsilon=1.0, queries=[{"name": "q", "by": ["month", "crime_type"]}, {"name": "r", "kind": "rate", "by": ["crime_type"], "numerator": {"crime_type": ["Drugs"]}}]))
    calibrated = an.histogram_sigmas(analytics, DELTA)
    domain = _domain(agencies)
    for q in analytics.queries:
        outcome = an.run_query(q, analytics, domain, agencies, DELTA, calibrated, "run2", with_truth=True)
        assert outcome.summary["refused"] is None
    sigma = calibrated["q"][0]
    assert len(calibrated) == 3 and {s for s, _ in calibrated.values()} == {sigma}
    kw = {"value_discretization_interval": 1e-4, "pessimistic_estimate": True}
    independent = pld.from_gaussian_mechanism(sgd[0], sampling_prob=sgd[1], use_connect_dots=True, **kw).self_compose(3 * sgd[2])
    independent = independent.compose(pld.from_discrete_gaussian_mechanism(sigma, sensitivity=1, **kw).self_compose(3))
    expected = independent.get_epsilon_for_delta(DELTA)
    for a in agencies:
        with Ledger.open(a.ledger, a.name) as ledger:
            spent = ledger.spent()
            assert [r["mechanism"] for r in ledger.rows()][-3:] == [f"discrete-gaussian-count:{h}:federated-share" for h in ("q", "r.numerator", "r.denominator")]
        assert spent == pytest.approx(expected, rel=0.01), (spent, expected)


def test_over_budget_query_is_refused_and_nothing_leaves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agencies = _agencies(tmp_path, [40, 90])
    agencies[1].policy = AgencyPolicy(budget=0.5, delta=DELTA, max_grad_norm=1.0)  # one agency cannot afford it
    sent: list[object] = []
    monkeypatch.setattr(an, "secure_sum", lambda vectors: sent.append(vectors))
    analytics = AnalyticsConfig.model_validate(dict(epsilon=1.0, queries=[{"name": "q", "by": ["crime_type"]}]))
    outcome = an.run_query(analytics.queries[0], analytics, _domain(agencies), agencies, DELTA, an.histogram_sigmas(analytics, DELTA), "r", with_truth=True)
    assert outcome.frame is None and sent == []
    assert "agency-1" in outcome.summary["refused"] and "budget" in outcome.summary["refused"]
    for a in agencies:  # all or none: the agency that could afford it spent nothing either
        with Ledger.open(a.ledger, a.name) as ledger:
            assert ledger.rows() == []


def test_more_dropouts_than_tolerated_is_refused(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [40, 90, 10])
    domain = _domain(agencies)
    with pytest.raises(an.AnalyticsRefused, match="dropped out"):
        an.release("federated", HIST, domain, agencies, 5.0, _settings(tolerate=1), "r", dropped=["agency-0", "agency-1"])
    out = an.release("federated", HIST, domain, agencies, 5.0, _settings(tolerate=1), "r", dropped=["agency-0"])
    assert out.reporting == ("agency-1", "agency-2")
    assert out.variance == pytest.approx(2 * 25.0 / 2, rel=1e-6)  # 2 shares of σ²/2: σ kept
    with Ledger.open(agencies[0].ledger, agencies[0].name) as ledger:
        assert ledger.rows() == []  # the agency that dropped out released and spent nothing


def test_a_replace_one_ledger_refuses_a_count(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [4, 4])
    with Ledger.open(agencies[0].ledger, agencies[0].name) as ledger:
        ledger.charge("run", "fedavg-dp", 1, (1.0, 0.1, 10), delta=DELTA, accountant="pld", budget=1000, neighbouring="replace-one")
    analytics = AnalyticsConfig.model_validate(dict(queries=[{"name": "q", "by": ["crime_type"]}]))
    outcome = an.run_query(analytics.queries[0], analytics, _domain(agencies), agencies, DELTA, an.histogram_sigmas(analytics, DELTA), "r", with_truth=True)
    assert outcome.frame is None and "replace-one" in outcome.summary["refused"]


def test_cells_come_from_public_domains_only() -> None:
    records = pd.DataFrame({"month": ["2024-01", "2024-01", "2030-01"], "crime_type": ["Drugs", "Not a type", "Drugs"], "outcome": ["", "", ""], "agency": ["a"] * 3, "lsoa_code": ["x"] * 3})
    domain = Domain(MONTHS, ("a",), crime_types=TYPES)
    counts = cell_totals(records, Histogram("h", ("month", "crime_type")), domain)
    assert counts.tolist() == [0, 1, 0, 0, 0, 0]  # only the in-domain record counts
    with pytest.raises(ValueError, match="top_k ranks areas"):
        Query("t", "top_k", ("month",))


def test_joint_calibration_spends_the_block_epsilon() -> None:
    analytics = AnalyticsConfig.model_validate(dict(epsilon=1.0, queries=[{"name": "a", "by": ["month"]}, {"name": "b", "by": ["crime_type"], "epsilon": 0.3}]))
    sig = an.histogram_sigmas(analytics, DELTA)
    assert sig["a"][0] == pytest.approx(calibrate_count_sigma(1.0, DELTA), rel=1e-9)
    assert sig["b"][0] > sig["a"][0]


def _write_config(tmp_path: Path, extra: str = "") -> Path:
    text = (Path(__file__).resolve().parents[1] / "configs" / "analytics.yaml").read_text(encoding="utf-8")
    path = tmp_path / "analytics.yaml"
    path.write_text(text.replace("output: runs", f"output: {tmp_path / 'runs'}") + extra, encoding="utf-8")
    return path


@pytest.mark.slow
def test_peel_analyze_example_config_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`peel analyze configs/analytics.yaml` on the default data: files, figures, the ledger
    spend, the trail, in under a minute."""
    import json
    import time

    from experiments.cli import main
    from experiments.trail import verify_run

    started = time.perf_counter()
    assert main(["analyze", str(_write_config(tmp_path))]) == 0
    assert time.perf_counter() - started < 60
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["analytics"]
    assert set(summary["queries"]) == {"by_type_month", "by_agency_outcome", "no_suspect_rate", "hotspots", "mean_centre_lat"}
    centre = summary["queries"]["mean_centre_lat"]
    assert centre["column"] == "latitude" and centre["missing"] > 0 and centre["mae"] < 0.05  # degrees of latitude
    for name, q in summary["queries"].items():
        assert q["refused"] is None and q["mode"] == "federated"
        frame = pd.read_csv(run_dir / "analytics" / f"{name}.csv")
        assert {"released", "half_width_95", "true"} <= set(frame.columns)
        assert max(q["epsilon_after"].values()) <= 1.0 + 1e-6  # the block's ε, charged in each ledger
    assert summary["max_epsilon_after"] == pytest.approx(1.0, rel=0.01)
    assert summary["queries"]["hotspots"]["overlap"] > 0.8
    assert (run_dir / "configs" / "analytics.yaml").is_file()
    assert verify_run(run_dir) == 0


def test_peel_analyze_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.cli import main

    config = _write_config(tmp_path)
    assert main(["analyze", str(config), "--set", "analytics.queries=[{name: q, by: [weekday]}]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "analytics.queries.0.by.0" in err
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"output: {tmp_path / 'runs'}\n", encoding="utf-8")
    assert main(["analyze", str(plain)]) == 2
    assert "no analytics: block" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_sum_too_far_from_a_discrete_gaussian_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(an, "share_floor", lambda *args: 0.3)  # shares of σ 0.3: the sum is far from N_Z (τ ≈ 1)
    agencies = _agencies(tmp_path, [4, 4, 4])
    with pytest.raises(an.AnalyticsRefused, match="too far from a discrete Gaussian"):
        an.release("federated", HIST, _domain(agencies), agencies, 0.6, _settings(tolerate=0), "r")
    for a in agencies:
        with Ledger.open(a.ledger, a.name) as ledger:
            assert ledger.rows() == []


@pytest.mark.slow
def test_peel_run_with_analytics_ledgers_match_dp_accounting(tmp_path: Path) -> None:
    """A real `peel run` (analytics first, then DP-SGD on the same agencies): each ledger's ε is
    what an independent dp-accounting PLD composition of its rows gives, within 1%; both trails
    verify against the ledgers."""
    import json

    from dp_accounting.pld import privacy_loss_distribution as pld

    from experiments.cli import main
    from experiments.trail import ledger_rows, verify_run
    from privacy.audit_trail import verify

    config = tmp_path / "run.yaml"
    config.write_text(
        f"seed: 0\noutput: {tmp_path / 'runs'}\n"
        "data: {source: synthetic, agencies: 3, incidents: 12000, months: 12}\n"
        "task: {test_months: 3, hidden: [8]}\nfederation: {rounds: 2}\n"
        "privacy: {epsilon: 3.0, delta: 1.0e-5}\narchitectures: [fedavg-dp]\naudit: false\n"
        "analytics: {epsilon: 1.0, queries: [{name: by_type, by: [crime_type]}, {name: r, kind: rate, by: [month], numerator: {crime_type: [Burglary]}}]}\n",
        encoding="utf-8",
    )
    assert main(["run", str(config)]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert all(q["refused"] is None for q in summary["analytics"]["queries"].values())
    spec = json.loads((run_dir / "federation.json").read_text(encoding="utf-8"))
    kw = {"value_discretization_interval": 1e-4, "pessimistic_estimate": True}
    for agency in spec["agencies"]:
        with Ledger.open(agency["ledger"], agency["name"]) as ledger:
            rows, spent = ledger.rows(), ledger.spent()
        kinds = [r["kind"] for r in rows]
        assert kinds[:3] == ["discrete-gaussian"] * 3 and len(rows) > 3  # analytics first, then training
        composed = None
        for r in rows:
            if r["kind"] == "discrete-gaussian":
                one = pld.from_discrete_gaussian_mechanism(r["sigma"], sensitivity=int(r["sensitivity"]), **kw).self_compose(r["steps"])
            else:  # DP-SGD rounds and the released record count: (subsampled) Gaussians
                one = pld.from_gaussian_mechanism(r["sigma"], sampling_prob=r["sample_rate"], use_connect_dots=True, **kw).self_compose(r["steps"])
            composed = one if composed is None else composed.compose(one)
        assert composed is not None
        assert spent == pytest.approx(composed.get_epsilon_for_delta(1e-5), rel=0.01)
        assert 2.9 < spent <= 3.0 + 1e-6  # training used what analytics left
    assert verify_run(run_dir) == 0
    analytics_rows = ledger_rows(spec, f"{run_dir.name}-analytics")
    assert len(analytics_rows) == 9 and verify(run_dir / "analytics" / "audit.jsonl", analytics_rows) == []


def test_analyze_sweep_expands_analytics_keys_and_refuses_others() -> None:
    from experiments.analyze_sweep import cells
    from experiments.config import ConfigError, validate

    base = {"analytics": {"queries": [{"name": "q", "by": ["month"]}]}}
    config = validate({**base, "sweep": {"analytics.epsilon": [0.5, 2], "analytics.mode": ["local", "federated"]}}, "x")
    grid = cells(config, "x")
    assert [(v["analytics.epsilon"], v["analytics.mode"]) for v, _ in grid] == [(0.5, "local"), (0.5, "federated"), (2, "local"), (2, "federated")]
    assert all(c.analytics is not None and c.analytics.epsilon == v["analytics.epsilon"] and c.sweep is None for v, c in grid)
    with pytest.raises(ConfigError, match="not 'federation.rounds'"):
        cells(validate({**base, "sweep": {"federation.rounds": [1, 2]}}, "x"), "x")


def test_report_section_renders_a_refusal_and_the_trust_label(tmp_path: Path) -> None:
    from experiments.report.analytics_section import inline, section

    summary = {"analytics": {"mode": "federated-trusted", "agencies": 3, "epsilon": 1.0, "delta": 1e-5, "queries": {"q": {"kind": "count", "mode": "federated-trusted", "refused": "agency-1: privacy budget exhausted"}}}}
    html = section(summary, tmp_path)
    assert "TRUSTS the coordinator" in html and "refused, nothing released: agency-1: privacy budget exhausted" in html
    assert inline("<body></body>", [None, summary], tmp_path).startswith("<body><section id='analytics'>")
    assert inline("<body></body>", [{"architectures": {}}], tmp_path) == "<body></body>"


def test_tolerate_beyond_the_federation_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.cli import main

    config = _write_config(tmp_path)
    assert main(["analyze", str(config), "--set", "analytics.tolerate=8", "--set", "data.incidents=4000", "--set", "data.months=8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "analytics.tolerate: 8 with 8 agencies; at most 7" in err
    assert not any((tmp_path / "runs").iterdir())  # the run folder was removed: nothing half-made


def test_an_agency_whose_accountant_cannot_count_refuses_with_the_reason(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [4, 4])
    agencies[0].policy = AgencyPolicy(budget=5.0, delta=DELTA, max_grad_norm=1.0, accountant="rdp")
    analytics = AnalyticsConfig.model_validate(dict(queries=[{"name": "q", "by": ["crime_type"]}]))
    outcome = an.run_query(analytics.queries[0], analytics, _domain(agencies), agencies, DELTA, an.histogram_sigmas(analytics, DELTA), "r", with_truth=True)
    assert outcome.frame is None and "accountant rdp cannot account" in outcome.summary["refused"]
    assert outcome.summary["epsilon_after"] == {"agency-0": 0.0, "agency-1": 0.0}


def test_grid_cells_cover_the_public_box_and_ignore_points_outside() -> None:
    from tasks.analytics import Grid

    grid = Grid.over(-1.0, -0.9, 51.0, 51.05, km=2.0)  # ≈ 7 km × 5.6 km
    assert (grid.rows, grid.cols) == (3, 4)
    lon = np.array([-1.0, -0.9, -0.95, -2.0, np.nan])
    lat = np.array([51.0, 51.05, 51.02, 51.0, 51.0])
    pos = grid.position(lon, lat)
    assert pos[0] == 0 and pos[1] == grid.rows * grid.cols - 1 and 0 <= pos[2] < 12 and pos[3] == -1 and pos[4] == -1
    records = pd.DataFrame({"month": ["2024-01"] * 5, "crime_type": ["Drugs"] * 5, "outcome": [""] * 5, "agency": ["a"] * 5, "lsoa_code": ["x"] * 5, "longitude": lon, "latitude": lat})
    domain = Domain(MONTHS, ("a",), grid=grid)
    counts = cell_totals(records, Histogram("g", ("grid",)), domain)
    assert counts.sum() == 3 and len(counts) == 12  # the two points outside or without coordinates count nowhere


def test_analyze_sweep_rows_carry_the_noise_and_central_stays_in_the_figure(tmp_path: Path) -> None:
    import matplotlib.axes

    from experiments import analyze_sweep

    rows = []
    for mode, noise, mae in (("central", None, 0.5), ("federated", "discrete-gaussian", 5.0), ("federated", "skellam", 3.0)):
        run = tmp_path / f"{mode}-{noise}"
        run.mkdir()
        q = {"kind": "count", "mode": mode, "noise": noise, "mae": mae, "epsilon_after": {"a": 1.0}}
        (run / "summary.json").write_text(json.dumps({"analytics": {"epsilon": 1.0, "queries": {"q": q}}}), encoding="utf-8")
        rows += analyze_sweep._rows({"analytics.noise": noise}, run)
    assert [r["noise"] for r in rows] == ["none", "discrete-gaussian", "skellam"]
    labels: list[str] = []
    real = matplotlib.axes.Axes.plot

    def plot(self: matplotlib.axes.Axes, *args: Any, **kwargs: Any) -> Any:
        labels.append(str(kwargs.get("label")))
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.axes.Axes, "plot", plot)
        analyze_sweep._figure(pd.DataFrame(rows))
    assert sorted(labels) == ["central", "federated, discrete-gaussian", "federated, skellam"]
