"""Skellam noise for analytics (analytics.noise: skellam): the CSPRNG sampler, the exact PLD
against an independent computation, the ledger composed with DP-SGD, every mode's stated noise
over 200 releases, the federated floor gone, and the empirical audit of the Skellam design."""

from __future__ import annotations

import math
from pathlib import Path

import mpmath  # type: ignore[import-untyped]
import numpy as np
import pytest
from scipy.stats import poisson

from experiments import analyze as an
from experiments.analytics_config import AnalyticsConfig
from privacy.accounting import epsilon
from privacy.audit.count_audit import audit_release, audit_share_design
from privacy.count_release import ShareDesign, calibrate_count_sigma, count_event, share_floor
from privacy.ledger import Ledger
from privacy.mechanisms import SKELLAM, MechanismEvent
from privacy.noise import poisson_table, sample_skellam
from tests.test_analytics import HIST, _agencies, _domain, _settings, charge_dpsgd_rounds

DELTA = 1e-5
SKELLAM_SETTINGS = {"noise": "skellam"}


# --- the sampler ----------------------------------------------------------------------------
@pytest.mark.parametrize("mu", [0.05, 3.0, 400.0])
def test_skellam_draws_have_mean_zero_and_variance_two_mu(mu: float) -> None:
    draws = sample_skellam(mu, 40_000)
    assert draws.dtype == np.int64
    assert abs(draws.mean()) < 5 * math.sqrt(2 * mu / draws.size)
    assert draws.var() / (2 * mu) == pytest.approx(1.0, abs=0.04)


@pytest.mark.parametrize("mu", [0.7, 25.0, 5000.0])
def test_the_poisson_table_is_the_poisson_cdf_to_2_to_the_minus_128(mu: float) -> None:
    table = poisson_table(mu)
    assert table.tail_mass < 2.0**-120
    k = np.arange(table.first, table.first + len(table.thresholds))
    implied = np.array(table.thresholds, dtype=object) / 2**128
    np.testing.assert_allclose(implied.astype(float), poisson.cdf(k, mu), rtol=1e-12, atol=1e-15)
    assert list(table.thresholds) == sorted(table.thresholds) and table.thresholds[-1] <= 2**128
    assert table.draw(0) <= max(0.0, mu - 3 * math.sqrt(mu)) and table.draw(2**128 - 1) > mu + 5 * math.sqrt(mu)  # the extremes of u reach the tails


def test_skellam_draws_come_from_os_entropy_not_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    def _no(*_a: object, **_k: object) -> None:
        raise AssertionError("np.random used")

    monkeypatch.setattr(np.random, "default_rng", _no)
    monkeypatch.setattr(np.random, "randint", _no)
    assert not np.array_equal(sample_skellam(50.0, 64), sample_skellam(50.0, 64))
    assert not sample_skellam(0.0, 5).any()


# --- accounting -----------------------------------------------------------------------------
def _skellam_pmf(mu: float, lo: int, hi: int) -> dict[int, float]:
    """P[Sk(μ) = x] = e^{−2μ} I_|x|(2μ), with mpmath (independent of scipy's `ive`)."""
    with mpmath.workdps(40):
        return {x: float(mpmath.exp(-2 * mpmath.mpf(mu)) * mpmath.besseli(abs(x), 2 * mpmath.mpf(mu))) for x in range(lo, hi + 1)}


def _direct_epsilon(mu: float, shift: int, delta: float) -> float:
    """ε at δ of one Sk(μ) release at shift Δ: the hockey-stick divergence summed over the pmf."""
    span = int(14 * math.sqrt(2 * mu)) + 40
    p = _skellam_pmf(mu, -span - shift, span + shift)
    xs = range(-span, span + shift + 1)

    def hockey(eps: float) -> float:
        return math.fsum(max(0.0, p[x] - math.exp(eps) * p[x - shift]) for x in xs)

    lo, hi = 0.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if hockey(mid) > delta else (lo, mid)
    return hi


@pytest.mark.parametrize(("mu", "shift"), [(0.5, 1), (8.0, 1), (60.0, 1), (900.0, 1), (200.0, 5)])
def test_skellam_pld_epsilon_matches_the_direct_privacy_loss_sum(mu: float, shift: int) -> None:
    ours = epsilon([MechanismEvent(SKELLAM, mu, shift)], DELTA, "pld")
    direct = _direct_epsilon(mu, shift, DELTA)
    assert ours == pytest.approx(direct, rel=0.01)
    assert ours >= direct * (1 - 1e-6)  # pessimistic: never below the exact figure


def test_a_smaller_shift_never_spends_more_than_the_charged_one() -> None:
    # Sk(μ) is log-concave: a record that moves a sum by d ≤ Δ is covered by the charge at Δ.
    mu, top = 40.0, 4
    eps = [_direct_epsilon(mu, d, DELTA) for d in range(1, top + 1)]
    assert eps == sorted(eps) and eps[-1] <= epsilon([MechanismEvent(SKELLAM, mu, top)], DELTA, "pld") * (1 + 1e-9)


def _independent_skellam_pld(mu: float, shift: int, interval: float) -> object:
    """The Skellam PLD built here from mpmath pmfs (privacy loss rounded up, tail as infinite loss)."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    span = int(14 * math.sqrt(2 * mu)) + 40
    p = _skellam_pmf(mu, -span - shift, span + shift)
    rounded: dict[int, float] = {}
    for x in range(-span, span + shift + 1):
        loss = math.log(p[x]) - math.log(p[x - shift])
        key = math.ceil(loss / interval)
        rounded[key] = rounded.get(key, 0.0) + p[x]
    infinity = max(0.0, 1.0 - math.fsum(rounded.values()))
    return pld.PrivacyLossDistribution.create_from_rounded_probability(rounded, infinity, interval, pessimistic_estimate=True)


def test_a_ledger_of_dpsgd_rounds_and_skellam_counts_matches_an_independent_composition(tmp_path: Path) -> None:
    from dp_accounting.pld import privacy_loss_distribution as pld

    agencies = _agencies(tmp_path, [40, 90])
    sgd = charge_dpsgd_rounds(agencies)
    analytics = AnalyticsConfig.model_validate(dict(epsilon=1.0, noise="skellam", queries=[{"name": "q", "by": ["month", "crime_type"]}, {"name": "r", "kind": "rate", "by": ["crime_type"], "numerator": {"crime_type": ["Drugs"]}}]))
    calibrated = an.histogram_sigmas(analytics, DELTA)
    for q in analytics.queries:
        outcome = an.run_query(q, analytics, _domain(agencies), agencies, DELTA, calibrated, "run2", with_truth=True)
        assert outcome.summary["refused"] is None and outcome.summary["noise"] == "skellam"
    with Ledger.open(agencies[0].ledger, agencies[0].name) as ledger:
        rows = ledger.rows()
    assert [r["kind"] for r in rows][-3:] == [SKELLAM] * 3 and rows[-1]["mechanism"] == "skellam-count:r.denominator:federated-share"
    mu = rows[-1]["sigma"]  # the stored noise of a Skellam row is its μ
    assert mu == pytest.approx(calibrated["q"][0] ** 2 / 2, rel=1e-9)
    interval = 1e-4
    independent = pld.from_gaussian_mechanism(sgd[0], sampling_prob=sgd[1], use_connect_dots=True, value_discretization_interval=interval).self_compose(3 * sgd[2])
    independent = independent.compose(_independent_skellam_pld(mu, 1, interval).self_compose(3))  # type: ignore[attr-defined]
    expected = independent.get_epsilon_for_delta(DELTA)
    for a in agencies:
        with Ledger.open(a.ledger, a.name) as ledger:
            assert ledger.spent() == pytest.approx(expected, rel=0.01)


def test_prv_and_rdp_refuse_a_skellam_release_and_bad_events_are_refused() -> None:
    event = MechanismEvent(SKELLAM, 20.0, 1)
    for accountant in ("rdp", "prv"):
        with pytest.raises(ValueError, match="skellam"):
            epsilon([(1.0, 0.01, 10), event], DELTA, accountant)
    with pytest.raises(ValueError, match="whole number"):
        MechanismEvent(SKELLAM, 20.0, 1.5)
    with pytest.raises(ValueError, match="unsampled"):
        MechanismEvent(SKELLAM, 20.0, 1, 0.5)


def test_calibration_spends_the_share_and_count_event_is_mu() -> None:
    sigma = calibrate_count_sigma(0.5, DELTA, releases=3, noise="skellam")
    event = count_event(sigma, 3, noise="skellam")
    assert event.kind == SKELLAM and event.noise == pytest.approx(sigma * sigma / 2)
    assert 0.498 < epsilon([event], DELTA, "pld") <= 0.5


# --- releases -------------------------------------------------------------------------------
def test_noise_off_federated_skellam_equals_central(tmp_path: Path) -> None:
    agencies = _agencies(tmp_path, [20_000, 35_000, 1])
    domain = _domain(agencies)
    central = an.release("central", HIST, domain, agencies, 0.0, _settings(), "r")
    federated = an.release("federated", HIST, domain, agencies, 0.0, _settings(**SKELLAM_SETTINGS), "r", noise_off_for_tests=True)
    assert central.values.max() > 100_000
    np.testing.assert_array_equal(federated.values, central.values)


# The 200-release std and coverage check runs for both noises in tests/test_analytics.py.


def test_the_share_floor_is_gone_with_skellam() -> None:
    """8 agencies, t = 1: the discrete Gaussian sum's σ stops falling near the floor's ε; the
    Skellam sum's keeps falling, and at a per-agency ε of 4 (5 histograms, as the example config)
    federated Skellam beats local."""
    n, t, cells, budget = 8, 1, 336, 40.0
    floor = share_floor(cells, n - t, budget, 1e-3 * DELTA)
    dg, sk = [], []
    for eps in (0.5, 1.0, 2.0, 4.0, 8.0):
        s_dg = calibrate_count_sigma(eps, DELTA)
        s_sk = calibrate_count_sigma(eps, DELTA, noise="skellam")
        dg.append(math.sqrt(ShareDesign(n, t, s_dg, floor).released_variance(n)))
        sk.append(math.sqrt(ShareDesign(n, t, s_sk, 0.0, "skellam").released_variance(n)))
    assert all(b < a * 0.8 for a, b in zip(sk, sk[1:], strict=False))  # keeps falling
    assert dg[-1] == pytest.approx(dg[-2], rel=1e-9) and sk[-1] < dg[-1] / 3  # DG stuck at √n·s_min
    # Per agency ε = 4 over 5 histograms: σ per histogram at ε 0.8.
    sigma = calibrate_count_sigma(4.0, DELTA, releases=5, noise="skellam")
    federated = math.sqrt(ShareDesign(n, t, sigma, 0.0, "skellam").released_variance(n))
    local = math.sqrt(n * 2 * (sigma**2 / 2))
    assert federated < local / 2


# --- the empirical audit ------------------------------------------------------------------
def test_the_skellam_design_passes_its_audit_and_a_thin_one_is_caught() -> None:
    design = ShareDesign(8, 1, calibrate_count_sigma(0.5, DELTA, noise="skellam"), 0.0, "skellam")
    audit = audit_share_design(design, DELTA, draws_per_world=8000)
    assert audit.noise == "skellam" and audit.passed and 0 < audit.claimed_epsilon <= 0.505
    thin = audit_release(math.sqrt(2 * design.share_mu / 10), design.honest, design.guaranteed_sigma, DELTA, draws_per_world=8000, noise="skellam")
    assert not thin.passed and thin.lower_bound > thin.claimed_epsilon


def test_skellam_with_the_person_unit_is_a_config_error(tmp_path: Path) -> None:
    from experiments.config import ConfigError, validate

    config = validate({"privacy": {"unit": "person"}, "task": {"name": "outcome"}, "analytics": {"noise": "skellam", "queries": [{"name": "q", "by": ["month"]}]}}, "x")
    federation = type("F", (), {"agencies": [{"name": "a"}, {"name": "b"}], "areas": None, "period": ("2024-01", "2024-02")})()
    with pytest.raises(ConfigError, match="record unit only"):
        an.check_beside(config, federation)


@pytest.mark.parametrize("mu", [0.06, 0.5, 4.0, 60.0])
def test_a_skellam_counts_half_width_is_its_exact_95_quantile(mu: float) -> None:
    from scipy.stats import skellam

    from privacy.count_release import half_width

    h = half_width(2 * mu, "skellam")
    assert h == int(h) and 2 * skellam.cdf(h, mu, mu) - 1 >= 0.95 > 2 * skellam.cdf(h - 1, mu, mu) - 1
    draws = sample_skellam(mu, 20_000)
    assert np.mean(np.abs(draws) <= h) >= 0.94  # the sampler's noise is covered as stated


def test_peel_analyzes_audit_and_summary_carry_the_skellam_design(tmp_path: Path) -> None:
    from experiments.analytics_audit import audit_queries

    agencies = _agencies(tmp_path, [40, 90, 10])
    analytics = AnalyticsConfig.model_validate(dict(epsilon=1.0, noise="skellam", tolerate=1, queries=[{"name": "q", "by": ["month", "crime_type"]}]))
    outcome = an.run_query(analytics.queries[0], analytics, _domain(agencies), agencies, DELTA, an.histogram_sigmas(analytics, DELTA), "r", with_truth=True)
    q = outcome.summary
    assert q["noise"] == "skellam" and "Skellam" in q["mechanism"] and not q["share_floored"]
    assert q["mu"] == pytest.approx(q["sigma"] ** 2 / 2) and q["mu_charged"] == pytest.approx(q["mu"]) and q["share_mu"] == pytest.approx(q["mu"] / 2)
    assert q["released_sigma"] == pytest.approx(math.sqrt(3 * 2 * q["share_mu"]))  # 3 shares of Sk(μ/2)
    audit_queries({"q": q}, DELTA)
    assert q["audit"]["noise"] == "skellam" and q["audit"]["passed"]
