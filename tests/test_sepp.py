"""tasks.sepp: the kernels and the forecast by hand, the fit's likelihood against the forecast's,
and EM recovering known parameters of simulated self-exciting counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tasks.sepp import SeppFit, fit_sepp, forecast, lagged_sum, nearest_pairs, simulate_sepp, time_kernel


def grid_distances(side: int, spacing: float) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(side) * spacing, np.arange(side) * spacing)
    x, y = xs.ravel(), ys.ravel()
    return np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])


def poisson_log_likelihood(counts: np.ndarray, lam: np.ndarray) -> float:
    return float((counts * np.log(lam)).sum() - lam.sum())


def test_time_kernel_by_hand():
    # omega = ln 2: each month half the one before, truncated at 3 months.
    assert time_kernel(np.log(2), 3) == pytest.approx(np.array([1, 0.5, 0.25]) / 1.75)
    assert time_kernel(0.3, 6).sum() == pytest.approx(1.0)


def test_lagged_sum_by_hand():
    counts = np.array([[1, 2, 4, 8]])
    assert lagged_sum(counts, np.array([0.5, 0.25])).tolist() == [[0, 0.5, 1 + 0.25, 2 + 0.5]]


def test_spatial_kernel_by_hand():
    # Three areas on a line at 0, 300 and 1000 m; each reaches its 2 nearest (itself first).
    distances = np.abs(np.subtract.outer([0.0, 300.0, 1000.0], [0.0, 300.0, 1000.0]))
    pairs = nearest_pairs(distances, 2)
    assert pairs.source.tolist() == [0, 0, 1, 1, 2, 2]
    assert pairs.target.tolist() == [0, 1, 1, 0, 2, 1]
    g = pairs.kernel(300.0)
    near = np.exp(-0.5)  # 300 m at sigma 300 m
    far = np.exp(-0.5 * (700 / 300) ** 2)
    assert g.tolist() == pytest.approx([1 / (1 + near), near / (1 + near), 1 / (1 + near), near / (1 + near), 1 / (1 + far), far / (1 + far)])
    # spread: what each target receives from the sources' values.
    values = np.array([[10.0], [0.0], [1.0]])
    assert pairs.spread(g, values)[:, 0] == pytest.approx([10 / (1 + near), 10 * near / (1 + near) + far / (1 + far), 1 / (1 + far)])


def test_forecast_by_hand():
    distances = np.array([[0.0, 400.0], [400.0, 0.0]])
    counts = np.array([[2, 0, 1], [0, 3, 0]])
    fit = SeppFit(np.array([0.5, 1.0]), 0.4, np.log(2), 400.0, 2, 2, 0.0, 0, True)
    lam = forecast(fit, counts, distances)
    own, other = 1 / (1 + np.exp(-0.5)), np.exp(-0.5) / (1 + np.exp(-0.5))
    f1, f2 = 1 / 1.5, 0.5 / 1.5
    assert lam[:, 0] == pytest.approx([0.5, 1.0])  # nothing before month 0
    # Month 2, area 0: its own 2 incidents two months back, area 1's 3 one month back.
    assert lam[0, 2] == pytest.approx(0.5 + 0.4 * (f2 * 2 * own + f1 * 3 * other))
    assert lam[1, 2] == pytest.approx(1.0 + 0.4 * (f2 * 2 * other + f1 * 3 * own))


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(1)
    distances = grid_distances(8, 500.0)
    background = np.exp(rng.normal(0, 0.5, 64)) * 1.5
    truth = dict(background=background, theta=0.5, omega=0.7, sigma_m=400.0)
    counts = simulate_sepp(background, 0.5, 0.7, 400.0, distances, 120, rng)
    return counts, distances, truth, fit_sepp(counts, distances)


def test_em_recovers_simulated_parameters(simulated):
    counts, distances, truth, fit = simulated
    assert fit.converged
    assert fit.theta == pytest.approx(truth["theta"], abs=0.08)
    assert fit.omega == pytest.approx(truth["omega"], rel=0.3)
    assert fit.sigma_m == pytest.approx(truth["sigma_m"], rel=0.3)
    assert fit.background.sum() == pytest.approx(truth["background"].sum(), rel=0.1)
    assert np.corrcoef(fit.background, truth["background"])[0, 1] > 0.9


def test_fit_likelihood_is_the_forecasts_and_beats_the_truth(simulated):
    counts, distances, truth, fit = simulated
    # Over the fitted months the forecast is the intensity; its Poisson log-likelihood is the fit's.
    assert fit.log_likelihood == pytest.approx(poisson_log_likelihood(counts, forecast(fit, counts, distances)), rel=1e-9)
    at_truth = dataclasses.replace(fit, **truth)
    # The maximum likelihood fit must be at least as likely as the parameters that made the data.
    assert fit.log_likelihood >= poisson_log_likelihood(counts, forecast(at_truth, counts, distances)) - 1e-6


def test_no_triggering_gives_a_small_branching_ratio():
    rng = np.random.default_rng(2)
    distances = grid_distances(6, 500.0)
    rate = np.exp(rng.normal(0, 0.7, 36)) * 3
    counts = rng.poisson(rate[:, None] * np.ones(60))
    fit = fit_sepp(counts, distances)
    assert fit.theta < 0.05
    assert fit.background == pytest.approx(counts.mean(axis=1) * (1 - fit.theta), rel=0.2, abs=0.2)


def test_bad_inputs_are_refused():
    distances = np.zeros((2, 2))
    with pytest.raises(ValueError, match="counts"):
        fit_sepp(np.array([[1, -1], [0, 0]]), distances)
    with pytest.raises(ValueError, match="distances"):
        fit_sepp(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="areas"):
        fit_sepp(np.ones((3, 3)), distances)
    empty = fit_sepp(np.zeros((2, 4)), distances)
    assert empty.theta == 0 and empty.background.tolist() == [0, 0]
